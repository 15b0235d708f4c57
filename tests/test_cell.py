"""One cell end to end without Snakemake: model, gate, timing, memory -> a valid Parquet row."""

import os

import numpy as np
import pytest

from pymdpbench import cell, gate, results
from pymdpbench.studies import get_study

TIMING_COLUMNS = {
    "samples_s",
    "step_time_s",
    "step_time_iqr_s",
    "ci_low_s",
    "ci_high_s",
    "stable",
    "setup_time_s",
    "compile_time_s",
    "inner_loops",
    "tracemalloc_peak_bytes",
    "rss_peak_bytes",
    "load_avg_1m",
    "rolling_mean_s",
    "rolling_std_s",
    "rss_trace_bytes",
    "blas_threads",
}


def point(states=6, obs=3, actions=2):
    return get_study("inference").point(states, obs, actions, 1)


def test_standard_cell_writes_a_valid_file_and_reference(tmp_path, tiny_timing):
    out, ref = tmp_path / "standard.parquet", tmp_path / "reference.npz"
    row = cell.write_cell(
        out,
        study_name="inference",
        point=point(),
        variant="standard",
        master_seed=5,
        timing=tiny_timing,
        write_reference=str(ref),
    )
    table = results.read_cell(out)
    assert table.num_rows == 1
    assert row["status"] == "ok" and row["gate_pass"]
    assert len(row["samples_s"]) == tiny_timing["samples"]
    assert row["ci_low_s"] <= row["step_time_s"] <= row["ci_high_s"]
    assert row["model_bytes"] == (3 * 6 + 6 * 6 * 2) * 8
    trajectory, _ = gate.load_reference(ref)
    assert trajectory.q_pi.shape == (tiny_timing["gate_steps"], 2)
    env = results.environment_of(out)
    assert env["version_inferactively-pymdp"].startswith("1.0")
    assert env["OPENBLAS_NUM_THREADS"] == "1"


def test_same_seed_gives_same_non_timing_content(tmp_path, tiny_timing):
    rows = [cell.run_cell("inference", point(), "standard", 11, tiny_timing) for _ in range(2)]
    for key in rows[0]:
        if key not in TIMING_COLUMNS:
            assert rows[0][key] == rows[1][key], key


def test_seed_depends_on_point_not_on_variant():
    assert cell.cell_seed(1, "inference", "s4-o2-a2-h1") == cell.cell_seed(1, "inference", "s4-o2-a2-h1")
    assert cell.cell_seed(1, "inference", "s4-o2-a2-h1") != cell.cell_seed(1, "inference", "s8-o2-a2-h1")
    assert cell.cell_seed(1, "inference", "s4-o2-a2-h1") != cell.cell_seed(2, "inference", "s4-o2-a2-h1")


def test_cell_over_memory_cap_is_skipped_with_reason(tiny_timing):
    row = cell.run_cell(
        "inference", point(states=512, obs=8, actions=4), "standard", 1, tiny_timing, memory_cap_bytes=2**20
    )
    assert row["status"] == "skipped"
    assert "memory cap" in row["reason"]


def test_variant_compared_with_reference(tmp_path, tiny_timing):
    ref = tmp_path / "reference.npz"
    cell.run_cell(
        "planning", get_study("planning").point(4, 3, 2, 2), "standard", 3, tiny_timing, write_reference=str(ref)
    )
    # a custom variant given by module path: the standard agent again must match itself exactly
    row = cell.run_cell(
        "planning",
        get_study("planning").point(4, 3, 2, 2),
        "again",
        3,
        tiny_timing,
        reference_path=str(ref),
        engine="pymdpbench.engines.standard:Agent",
    )
    assert row["gate_pass"] and row["dev_qs"] == 0.0 and row["n_action_diff"] == 0
    assert row["n_policies"] == 4


def test_thread_variables_are_applied(tiny_timing):
    row = cell.run_cell("inference", point(), "standard", 1, tiny_timing, threads=1)
    assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["NUMBA_NUM_THREADS"] == "1"
    assert row["threads"] == 1
    assert "=1" in row["blas_threads"]
    assert np.all(np.isfinite(row["samples_s"]))


def test_a_reference_that_does_not_fit_the_model_is_refused_naming_it(tmp_path, tiny_timing):
    ref = tmp_path / "reference.npz"
    cell.write_cell(
        tmp_path / "standard.parquet",
        study_name="inference",
        point=point(),
        variant="standard",
        master_seed=5,
        timing=tiny_timing,
        write_reference=str(ref),
    )
    other = get_study("inference").point(6, 3, 3, 1)  # three actions: three policies, the reference has two
    reference, _ = gate.load_reference(ref)
    reference.save(ref, f"inference/{other['cell']}")
    out = tmp_path / "numba.parquet"
    with pytest.raises(
        gate.TrajectoryError,
        match=r"reference.npz: q_pi has shape \(4, 2\), the model needs "
        r"\(4, 3\).*delete it and run snakemake again",
    ):
        cell.write_cell(
            out,
            study_name="inference",
            point=other,
            variant="numba",
            master_seed=5,
            timing=tiny_timing,
            reference_path=str(ref),
        )
    assert not out.exists()
