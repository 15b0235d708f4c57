import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"

TINY_TIMING = {"samples": 4, "min_sample_s": 0.001, "gate_steps": 4, "memory_steps": 1, "unstable_iqr_ratio": 0.25}


@pytest.fixture
def tiny_timing():
    return dict(TINY_TIMING)


def copy_workflow(dest):
    """A copy of the workflow (not results) in ``dest``, so a test runs Snakemake in isolation."""
    for name in ("Snakefile", "workflow", "config", "scripts"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("profiles"))
        else:
            shutil.copy(src, dest / name)
    return dest


def run_snakemake(workdir, *args, timeout=900):
    return subprocess.run([SNAKEMAKE, *args], cwd=workdir, capture_output=True, text=True, timeout=timeout)


def run_workflow(workdir, config, *args):
    """Copy the workflow into ``workdir``, write ``config`` as c.yaml, run Snakemake to success."""
    import yaml

    copy_workflow(workdir)
    (workdir / "c.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(workdir, "--cores", "2", "--configfile", "c.yaml", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir
