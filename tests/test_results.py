"""Row schema, atomic writes, validation on read, merge."""

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pymdpbench import results


def row(cell, variant="standard", **extra):
    return {
        "study": "inference",
        "cell": cell,
        "variant": variant,
        "status": "ok",
        "reason": "",
        "samples_s": [1e-3, 2e-3],
        "step_time_s": 1.5e-3,
        "gate_pass": True,
        **extra,
    }


def test_write_and_read_roundtrip(tmp_path):
    path = tmp_path / "c.parquet"
    results.write_rows([row("s4")], path, {"numpy": "x"})
    table = results.read_cell(path)
    assert table.num_rows == 1
    assert table.column("samples_s").to_pylist() == [[1e-3, 2e-3]]
    assert results.environment_of(path) == {"numpy": "x"}
    assert not [p for p in os.listdir(tmp_path) if "tmp" in p]


def test_unknown_column_is_refused():
    with pytest.raises(KeyError, match="colour"):
        results.rows_to_table([row("s4", colour="red")])


def test_merge_concatenates_cells(tmp_path):
    paths = []
    for i, cell in enumerate(["s4", "s8", "s16"]):
        path = tmp_path / f"{cell}.parquet"
        results.write_rows([row(cell, p_states=4 * 2**i)], path, {})
        paths.append(path)
    merged = results.merge(paths, tmp_path / "study.parquet")
    assert sorted(merged["cell"]) == ["s16", "s4", "s8"]
    assert results.read_cell(tmp_path / "study.parquet").num_rows == 3


@pytest.mark.parametrize("damage", ["truncated", "foreign", "garbage"])
def test_merge_names_a_bad_file(tmp_path, damage):
    good = tmp_path / "good.parquet"
    results.write_rows([row("s4")], good, {})
    bad = tmp_path / "bad.parquet"
    if damage == "truncated":
        bad.write_bytes(good.read_bytes()[:200])
    elif damage == "foreign":
        pq.write_table(pa.table({"x": [1, 2]}), bad)
    else:
        bad.write_text("not parquet at all")
    with pytest.raises(results.ResultError, match="bad.parquet"):
        results.merge([good, bad], tmp_path / "study.parquet")
    assert not (tmp_path / "study.parquet").exists()


def test_opt_in_skip_leaves_a_bad_file_out_and_says_so(tmp_path):
    good = tmp_path / "good.parquet"
    results.write_rows([row("s4")], good, {})
    bad = tmp_path / "bad.parquet"
    bad.write_text("garbage")
    with pytest.warns(UserWarning, match="bad.parquet"):
        merged = results.merge([good, bad], tmp_path / "study.parquet", skip_bad=True)
    assert list(merged["cell"]) == ["s4"]
    skipped = results.skipped_files(tmp_path / "study.parquet")
    assert list(skipped) == [str(bad)]
    from pymdpbench.tables import markdown

    assert "left out of the merge" in markdown(
        merged.assign(
            **{
                "p_states": 4,
                "p_obs": 2,
                "p_actions": 2,
                "p_horizon": 1,
                "ci_low_s": 1e-3,
                "ci_high_s": 2e-3,
                "dev_qs": 0.0,
                "dev_q_pi": 0.0,
                "dev_G_rel": 0.0,
                "stable": True,
                "n_action_diff": 0,
                "seed": 1,
            }
        ),
        skipped,
    )


def cell_file(root, cell, variant="standard", study="inference", rows=None):
    """A cell file in the pipeline's layout, results/cells/<study>/<cell>/<variant>.parquet."""
    path = root / "cells" / study / cell / f"{variant}.parquet"
    results.write_rows(rows if rows is not None else [row(cell, variant, study=study)], path, {})
    return path


def test_merge_refuses_a_cell_file_copied_over_another(tmp_path):
    a, b = cell_file(tmp_path, "s4"), cell_file(tmp_path, "s8")
    b.write_bytes(a.read_bytes())
    with pytest.raises(
        results.ResultError,
        match=r"s8/standard.parquet: holds the row of inference/s4/standard, but "
        r"its path is that of inference/s8/standard",
    ):
        results.merge([a, b], tmp_path / "study.parquet", study="inference")
    assert not (tmp_path / "study.parquet").exists()


@pytest.mark.parametrize(
    "rows, words",
    [
        ([], "holds 0 rows, its study writes 1 per cell"),
        ([row("s4"), row("s4")], "holds 2 rows, its study writes 1 per cell"),
    ],
)
def test_merge_refuses_an_empty_or_doubled_cell_file(tmp_path, rows, words):
    good = cell_file(tmp_path, "s8")
    bad = cell_file(tmp_path, "s4", rows=rows)
    with pytest.raises(results.ResultError, match=str(bad).replace(".", r"\.") + ": " + words):
        results.merge([good, bad], tmp_path / "study.parquet", study="inference")


def test_merge_refuses_a_foreign_study_and_duplicates(tmp_path):
    good = cell_file(tmp_path, "s8")
    foreign = tmp_path / "elsewhere.parquet"
    results.write_rows([row("s4", study="planning")], foreign, {})
    with pytest.raises(results.ResultError, match="elsewhere.parquet: a row of study 'planning' in the 'inference'"):
        results.merge([good, foreign], tmp_path / "study.parquet", study="inference")
    twin = tmp_path / "twin.parquet"
    results.write_rows([row("s8")], twin, {})
    with pytest.raises(
        results.ResultError,
        match=r"twin.parquet: holds the row of inference/s8/standard, as .*s8/"
        r"standard.parquet does \(a duplicate\)",
    ):
        results.merge([good, twin], tmp_path / "study.parquet", study="inference")
    with pytest.raises(results.ResultError, match="listed twice"):
        results.merge([good, good], tmp_path / "study.parquet")


def test_schema_mismatch_names_missing_extra_and_mistyped_columns(tmp_path):
    table = results.rows_to_table([row("s4")])
    table = table.drop_columns(["seed"]).append_column("colour", pa.array(["red"]))
    table = table.set_column(table.schema.get_field_index("p_states"), "p_states", pa.array([4.0]))
    path = tmp_path / "odd.parquet"
    results.write_table(table, path)
    with pytest.raises(results.ResultError) as err:
        results.read_cell(path)
    assert "missing: seed; extra: colour; mistyped: p_states is double, expected int64" in str(err.value)
