"""The lock probe: does this environment match requirements.lock, and which package does not."""

import numpy as np
import pytest

from pymdpbench.lockfile import lock_status, read_lock

from conftest import ROOT


def write(tmp_path, text):
    path = tmp_path / "requirements.lock"
    path.write_text(text)
    return path


def test_environment_at_the_locked_versions_used_the_lock(tmp_path):
    path = write(tmp_path, f"# a comment\nnumpy=={np.__version__}\n    # via pymdpbench\n")
    status = lock_status(path)
    assert status["used"] is True and status["differences"] == {}
    assert len(status["sha256"]) == 64


def test_another_version_or_a_missing_package_is_named(tmp_path):
    path = write(tmp_path, f"NumPy==0.0.1\nno-such-package-xyz==1.0\nscipy=={__import__('scipy').__version__}\n")
    status = lock_status(path)
    assert status["used"] is False
    assert status["differences"] == {
        "numpy": f"0.0.1 -> {np.__version__}",
        "no-such-package-xyz": "1.0 -> not installed",
    }


def test_pins_for_other_platforms_are_not_counted(tmp_path):
    path = write(tmp_path, "colorama==0.0.1 ; sys_platform == 'no-such-os'\n")
    assert read_lock(path) == {}
    assert lock_status(path)["used"] is True


def test_a_range_is_not_a_lock(tmp_path):
    path = write(tmp_path, "numpy>=1\n")
    with pytest.raises(ValueError, match=r"requirements.lock:1: not an exact pin"):
        read_lock(path)


def test_no_lock_file_is_recorded_as_not_used(tmp_path):
    assert lock_status(tmp_path / "missing.lock") == {
        "file": str(tmp_path / "missing.lock"),
        "used": False,
        "reason": "no lock file",
    }


def test_the_committed_lock_pins_the_core_and_workflow_packages():
    pins = read_lock(ROOT / "requirements.lock")
    for name in ("inferactively-pymdp", "numpy", "scipy", "numba", "psutil", "snakemake", "pyarrow", "pytest"):
        assert name in pins, name
    assert "pymdpbench" not in pins  # the project itself is installed from the tree, not the lock
