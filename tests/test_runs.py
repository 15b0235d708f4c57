"""The run archive: a successful run kept whole under results/runs/<run_id>/, found again by id."""

import json
import os
import time

import pytest

from pymdpbench import harness, runs


def fake_results(root):
    """A results folder as a finished run leaves it (tables, figures, numbers, a cell file, a benchmark)."""
    (root / "figures/inference").mkdir(parents=True)
    (root / "tables").mkdir()
    (root / "paper").mkdir()
    (root / "cells/inference/s8").mkdir(parents=True)
    (root / "benchmarks/inference/s8").mkdir(parents=True)
    for name in (
        "inference.parquet",
        "figures/inference/scaling.png",
        "tables/inference.tex",
        "paper/numbers.tex",
        "cells/inference/s8/numba.parquet",
        "benchmarks/inference/s8/numba.tsv",
    ):
        (root / name).write_text(name)
    return root


def test_manifest_archives_the_run(tmp_path):
    results = fake_results(tmp_path / "results")
    manifest = harness.write_manifest(
        results / "manifest.json",
        command="snakemake",
        config={"seed": 1},
        profile=None,
        config_files=["c.yaml"],
        started=time.time() - 60,
        ended=time.time(),
    )
    run = results / "runs" / manifest["run_id"]
    assert json.loads((run / "manifest.json").read_text())["run_id"] == manifest["run_id"]
    for name in (
        "inference.parquet",
        "figures/inference/scaling.png",
        "tables/inference.tex",
        "paper/numbers.tex",
        "benchmarks/inference/s8/numba.tsv",
    ):
        assert (run / name).read_text() == name
    assert not (run / "cells").exists()  # the merged tables hold every row
    # hard links: a later run replaces the live file by a rename and leaves the archived one as it was
    assert os.stat(run / "inference.parquet").st_ino == os.stat(results / "inference.parquet").st_ino
    (results / "new.tmp").write_text("newer")
    os.replace(results / "new.tmp", results / "inference.parquet")
    assert (run / "inference.parquet").read_text() == "inference.parquet"
    assert [r["run_id"] for r in runs.list_runs(results)] == [manifest["run_id"]]
    assert runs.resolve("latest", results) == run
    assert runs.resolve(manifest["run_id"][:10], results) == run


def test_environment_is_complete():
    env = harness.environment()
    assert env["host"] and env["cpu_flags"]
    assert env["distributions"]["numpy"] == env["version_numpy"]
    assert "inferactively-pymdp" in {name.lower() for name in env["distributions"]}
    assert any(pool["user_api"] == "blas" for pool in env["blas"])
    assert {"cpu_governor", "cpu_mhz_now", "cpu_turbo"} <= set(env)


def test_archive_refuses_a_folder_without_manifest(tmp_path):
    fake_results(tmp_path)
    with pytest.raises(runs.RunError, match="no manifest.json"):
        runs.archive(tmp_path, "x")
    assert not list((tmp_path / "runs").iterdir())  # nothing half-written


def test_runs_are_listed_oldest_first(tmp_path):
    for run_id, started in (("b", "2026-01-02T00:00:00+00:00"), ("a", "2026-01-01T00:00:00+00:00")):
        (tmp_path / "runs" / run_id).mkdir(parents=True)
        (tmp_path / "runs" / run_id / "manifest.json").write_text(json.dumps({"run_id": run_id, "started": started}))
    assert [r["run_id"] for r in runs.list_runs(tmp_path)] == ["a", "b"]
    assert runs.resolve("latest~1", tmp_path).name == "a"
