"""A run killed with SIGKILL at several points, then rerun, ends with the same results as an
uninterrupted run (non-timing content), and never leaves a half-written file behind."""

import os
import signal
import subprocess
import time

import pandas as pd
import pytest
import yaml

from pymdpbench.results import non_timing_content, read_cell

from conftest import SNAKEMAKE, copy_workflow, run_snakemake, run_workflow

CONFIG = {
    "seed": 11,
    "variants": ["standard", "again"],
    "custom_variants": {"again": "pymdpbench.engines.standard:Agent"},
    "timing": {"samples": 3, "min_sample_s": 0.002, "gate_steps": 3, "memory_steps": 1},
    "studies": {
        "inference": {"states": [3, 4, 5], "observations": [2], "actions": [2]},
        "planning": {"states": 3, "observations": 2, "actions": 2, "horizons": [1, 2]},
    },
}
STUDIES = ["inference", "planning"]
# kill points: (what to wait for, how many of them) before SIGKILL
KILL_POINTS = [("parse", 0), ("cells", 1), ("cells", 6), ("merged", 1)]


def count(workdir, what):
    if what == "cells":
        return (
            len(list((workdir / "results/cells").glob("*/*/*.parquet"))) if (workdir / "results/cells").exists() else 0
        )
    return sum((workdir / f"results/{s}.parquet").exists() for s in STUDIES)


def content(workdir):
    return {s: non_timing_content(pd.read_parquet(workdir / f"results/{s}.parquet")) for s in STUDIES}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return content(run_workflow(tmp_path_factory.mktemp("whole"), CONFIG))


@pytest.mark.slow
@pytest.mark.parametrize("what, n", KILL_POINTS)
def test_killed_run_resumes_to_the_same_results(tmp_path, uninterrupted, what, n):
    workdir = copy_workflow(tmp_path)
    (workdir / "c.yaml").write_text(yaml.safe_dump(CONFIG))
    proc = subprocess.Popen(
        [SNAKEMAKE, "--cores", "2", "--configfile", "c.yaml"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while what != "parse" and count(workdir, what) < n and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    if what == "parse":
        time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    # nothing half-written: every Parquet file there is complete and valid
    for path in (workdir / "results").rglob("*.parquet"):
        read_cell(path)

    assert run_snakemake(workdir, "--unlock", "--configfile", "c.yaml").returncode == 0
    result = run_snakemake(workdir, "--cores", "2", "--configfile", "c.yaml", "--rerun-incomplete")
    assert result.returncode == 0, result.stderr[-2000:]
    resumed = content(workdir)
    for study in STUDIES:
        pd.testing.assert_frame_equal(resumed[study], uninterrupted[study])


@pytest.mark.slow
def test_a_corrupt_reference_or_a_missing_cell_file_is_made_again(tmp_path):
    """A reference that would not load never reaches a variant: it is removed before the DAG is built,
    and its point runs again; a deleted cell file is made again, though the merged table is newer."""
    config = {**CONFIG, "studies": {"inference": CONFIG["studies"]["inference"]}}
    workdir = run_workflow(tmp_path, config)
    before = non_timing_content(pd.read_parquet(workdir / "results/inference.parquet"))
    cells = workdir / "results/cells/inference"
    (cells / "s3-o2-a2-h1/reference.npz").write_text("not a reference")
    (cells / "s4-o2-a2-h1/again.parquet").unlink()

    result = run_snakemake(workdir, "--cores", "2", "--configfile", "c.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "removed results/cells/inference/s3-o2-a2-h1/reference.npz: not a readable reference" in result.stderr
    for point in ("s3-o2-a2-h1", "s4-o2-a2-h1", "s5-o2-a2-h1"):
        for variant in ("standard", "again"):
            read_cell(cells / point / f"{variant}.parquet")
    after = non_timing_content(pd.read_parquet(workdir / "results/inference.parquet"))
    pd.testing.assert_frame_equal(after, before)
    again = run_snakemake(workdir, "--cores", "2", "--configfile", "c.yaml")
    assert "Nothing to be done" in again.stdout + again.stderr
