"""Tables, LaTeX, headline numbers and figures from a merged table; figures are reproducible."""

import hashlib
import json

import pandas as pd
import pytest

from pymdpbench import cell, figures, results, tables
from pymdpbench.studies import get_study

SELF = "pymdpbench.engines.standard:Agent"


@pytest.fixture(scope="module")
def merged(
    tmp_path_factory,
):
    """A small inference table: standard and the standard agent again as a custom variant."""
    tmp = tmp_path_factory.mktemp("outputs")
    timing = {"samples": 4, "min_sample_s": 0.001, "gate_steps": 3, "memory_steps": 1, "unstable_iqr_ratio": 0.5}
    paths = []
    for states in (3, 6):
        point = get_study("inference").point(states, 2, 2, 1)
        ref = tmp / f"{states}.npz"
        for variant, engine in (("standard", None), ("again", SELF)):
            path = tmp / f"{states}-{variant}.parquet"
            cell.write_cell(
                path,
                study_name="inference",
                point=point,
                variant=variant,
                engine=engine,
                master_seed=1,
                timing=timing,
                reference_path=None if variant == "standard" else str(ref),
                write_reference=str(ref) if variant == "standard" else None,
            )
            paths.append(path)
    results.merge(paths, tmp / "inference.parquet")
    return tmp / "inference.parquet"


def test_speedups_only_for_passing_cells(merged):
    df = pd.read_parquet(merged)
    sp = tables.speedups(df)
    assert len(sp) == 2 and sp["gate_pass"].all()
    assert (sp["speedup_ci_low"] <= sp["speedup"]).all() and (sp["speedup"] <= sp["speedup_ci_high"]).all()
    failed = df.copy()
    failed.loc[failed["variant"] == "again", "gate_pass"] = False
    sp_failed = tables.speedups(failed)
    assert sp_failed["speedup"].isna().all()
    assert "FAIL" in tables.markdown(failed)


def test_latex_table_is_booktabs_with_geometric_mean(merged):
    tex = tables.latex(pd.read_parquet(merged))
    assert tex.startswith(r"\begin{tabular}") and r"\toprule" in tex and r"\bottomrule" in tex
    assert "geometric mean & again" in tex


def test_headline_numbers_and_macros(merged, tmp_path):
    tables.write_numbers([merged], tmp_path / "numbers.json", tmp_path / "numbers.tex")
    numbers = json.loads((tmp_path / "numbers.json").read_text())
    assert numbers["variants"]["again"]["largest_states"] == 6
    assert numbers["variants"]["again"]["max_deviation"] == 0.0
    tex = (tmp_path / "numbers.tex").read_text()
    assert r"\newcommand{\againMaxSpeedup}" in tex
    assert (
        tables.numbers_tex({"cells": 1, "variants": {"float32": {"largest_states": 8}}}).count(
            r"\floatThreeTwoLargestStates"
        )
        == 1
    )


@pytest.mark.parametrize("name", ["scaling", "speedup", "deviation"])
def test_figures_are_redrawn_identically_from_the_table(merged, tmp_path, name):
    digests = []
    for attempt in range(2):
        paths = [tmp_path / f"{attempt}/{name}.pdf", tmp_path / f"{attempt}/{name}.png"]
        figures.render(name, merged, paths)
        digests.append([hashlib.sha256(p.read_bytes()).hexdigest() for p in paths])
    assert digests[0] == digests[1]
