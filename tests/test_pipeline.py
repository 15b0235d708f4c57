"""Snakemake end to end on a tiny grid: cells -> merged Parquet -> figures, tables, manifest."""

import json

import pandas as pd
import pytest

from conftest import run_snakemake, run_workflow

TINY = {
    "seed": 3,
    "variants": ["standard", "numba"],
    "timing": {"samples": 3, "min_sample_s": 0.001, "gate_steps": 3, "memory_steps": 1},
    "studies": {
        "inference": {"states": [3, 5], "observations": [2], "actions": [2, 3], "max_size_product": 20},
        "planning": {"states": 3, "observations": 2, "actions": 2, "horizons": [1, 2]},
    },
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_workflow(tmp_path_factory.mktemp("pipeline"), TINY)


@pytest.mark.slow
def test_merged_tables_hold_every_cell_and_variant(run):
    inference = pd.read_parquet(run / "results/inference.parquet")
    # 2 states x 2 actions, minus s5-o2-a3 (5*2*3 = 30 > max_size_product 20), x 2 variants
    assert sorted(inference["cell"].unique()) == ["s3-o2-a2-h1", "s3-o2-a3-h1", "s5-o2-a2-h1"]
    assert len(inference) == 6
    assert set(inference["variant"]) == {"standard", "numba"}
    planning = pd.read_parquet(run / "results/planning.parquet")
    assert sorted(planning["n_policies"].unique()) == [2, 4]
    assert planning["gate_pass"].all()


@pytest.mark.slow
def test_figures_tables_and_manifest(run):
    for study, figures in {
        "inference": ["scaling", "speedup", "deviation"],
        "planning": ["horizon", "speedup", "deviation"],
    }.items():
        for figure in figures:
            for ext in ("pdf", "png"):
                assert (run / f"results/figures/{study}/{figure}.{ext}").stat().st_size > 1000
        table = (run / f"results/tables/{study}.md").read_text()
        assert "numba" in table and "speed-up" in table
    manifest = json.loads((run / "results/manifest.json").read_text())
    assert manifest["config"]["seed"] == 3
    assert "--configfile c.yaml" in manifest["command"]
    assert manifest["environment"]["version_numpy"]
    assert manifest["environment"]["distributions"]["snakemake"] and manifest["environment"]["blas"]
    record = json.loads((run / "results/paper/run.json").read_text())
    assert record["config"]["seed"] == 3 and record["environment"]["host"] == manifest["environment"]["host"]


@pytest.mark.slow
def test_run_is_archived_with_benchmarks_and_host(run):
    """The successful run is kept under results/runs/<run_id>/; Snakemake's benchmark file of every
    cell job is there; every row names its host; `pymdpbench runs` lists the run."""
    import subprocess
    import sys

    manifest = json.loads((run / "results/manifest.json").read_text())
    archived = run / "results/runs" / manifest["run_id"]
    assert json.loads((archived / "manifest.json").read_text()) == manifest
    for name in (
        "inference.parquet",
        "planning.parquet",
        "tables/inference.tex",
        "figures/inference/scaling.png",
        "paper/numbers.tex",
        "benchmarks/inference/s3-o2-a2-h1/numba.tsv",
    ):
        assert (archived / name).stat().st_size > 0, name
    benchmark = pd.read_csv(run / "results/benchmarks/planning/s3-o2-a2-h2/standard.tsv", sep="\t")
    assert benchmark["s"].iloc[0] > 0 and "max_rss" in benchmark
    rows = pd.read_parquet(archived / "inference.parquet")
    assert rows["host"].notna().all() and (rows["processes"] == 1).all()
    listed = subprocess.run([sys.executable, "-m", "pymdpbench", "runs"], cwd=run, capture_output=True, text=True)
    assert manifest["run_id"] in listed.stdout and "inference,planning" in listed.stdout


@pytest.mark.slow
def test_second_run_has_nothing_to_do(run):
    result = run_snakemake(run, "-n", "--cores", "1", "--configfile", "c.yaml")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr
