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
    for study, figures in {"inference": ["scaling", "speedup", "deviation"],
                           "planning": ["horizon", "speedup", "deviation"]}.items():
        for figure in figures:
            for ext in ("pdf", "png"):
                assert (run / f"results/figures/{study}/{figure}.{ext}").stat().st_size > 1000
        table = (run / f"results/tables/{study}.md").read_text()
        assert "numba" in table and "speed-up" in table
    manifest = json.loads((run / "results/manifest.json").read_text())
    assert manifest["config"]["seed"] == 3
    assert "--configfile c.yaml" in manifest["command"]
    assert manifest["environment"]["version_numpy"]


@pytest.mark.slow
def test_second_run_has_nothing_to_do(run):
    result = run_snakemake(run, "-n", "--cores", "1", "--configfile", "c.yaml")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr
