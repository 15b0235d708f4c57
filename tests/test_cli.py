"""The pymdpbench command: each subcommand through ``python -m pymdpbench``, as a user runs it."""

import subprocess
import sys

import pandas as pd
import pytest

from pymdpbench import cell
from pymdpbench.studies import get_study

from conftest import ROOT


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "pymdpbench", *args], cwd=cwd, capture_output=True, text=True)


def test_help_lists_every_subcommand():
    result = cli("--help")
    assert result.returncode == 0
    for command in ("compare", "runs", "models", "bench", "time-cell"):
        assert command in result.stdout


def test_models_lists_and_checks_named_models_and_gnn_files():
    result = cli("models", "--engines")
    assert result.returncode == 0, result.stderr
    for name in ("tmaze", "gridworld", "config/models/tmaze.md", "config/models/switch.md"):
        assert name in result.stdout
    assert "numba" in result.stdout and "supported" in result.stdout


def test_models_names_a_bad_model_and_fails(tmp_path):
    bad = tmp_path / "bad.md"
    bad.write_text("## GNNSection\nbad\n")
    result = cli("models", "bad.md", "nonexistent", cwd=tmp_path)
    assert result.returncode == 1
    assert "bad.md" in result.stdout and "FAILED" in result.stdout
    assert "unknown model 'nonexistent'" in result.stdout


def test_runs_without_archive(tmp_path):
    result = cli("runs", "--results", str(tmp_path))
    assert result.returncode == 0 and "no archived runs" in result.stdout


def test_bench_passes_arguments_to_the_engine_benchmark():
    result = cli("bench", "--help")
    assert result.returncode == 0
    assert "--quick" in result.stdout  # the script's own help


@pytest.mark.slow
def test_timing_in_several_fresh_processes(tmp_path, tiny_timing):
    """timing.processes = 3: the row holds the samples of 3 processes (each its own interpreter,
    started by ``pymdpbench time-cell``), a CI across them, and the variance split."""
    point = get_study("inference").point(8, 3, 2, 1)
    row = cell.write_cell(
        tmp_path / "c.parquet",
        study_name="inference",
        point=point,
        variant="numba",
        master_seed=1,
        timing={**tiny_timing, "processes": 3},
    )
    stored = pd.read_parquet(tmp_path / "c.parquet").iloc[0]
    assert stored["processes"] == 3
    assert list(stored["sample_process"]) == [0] * 4 + [1] * 4 + [2] * 4
    assert len(stored["samples_s"]) == 12
    assert stored["ci_low_s"] <= stored["step_time_s"] <= stored["ci_high_s"]
    assert stored["within_process_var_s2"] > 0 and stored["between_process_var_s2"] >= 0
    assert 0 <= stored["between_process_share"] <= 1
    assert stored["host"] and row["gate_pass"]
    # each process timed for itself: the three blocks of samples are not copies of one another
    blocks = [tuple(stored["samples_s"][i * 4 : (i + 1) * 4]) for i in range(3)]
    assert len(set(blocks)) == 3


def test_one_process_keeps_between_process_variance_null(tmp_path, tiny_timing):
    point = get_study("inference").point(4, 2, 2, 1)
    cell.write_cell(
        tmp_path / "c.parquet", study_name="inference", point=point, variant="numba", master_seed=1, timing=tiny_timing
    )
    stored = pd.read_parquet(tmp_path / "c.parquet").iloc[0]
    assert stored["processes"] == 1 and set(stored["sample_process"]) == {0}
    assert pd.isna(stored["between_process_var_s2"]) and stored["within_process_var_s2"] >= 0
