"""Row schema, atomic writes, validation on read, merge."""

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pymdpbench import results


def row(cell, variant="standard", **extra):
    return {"study": "inference", "cell": cell, "variant": variant, "status": "ok", "reason": "",
            "samples_s": [1e-3, 2e-3], "step_time_s": 1.5e-3, "gate_pass": True, **extra}


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

    assert "left out of the merge" in markdown(merged.assign(**{
        "p_states": 4, "p_obs": 2, "p_actions": 2, "p_horizon": 1, "ci_low_s": 1e-3, "ci_high_s": 2e-3,
        "dev_qs": 0.0, "dev_q_pi": 0.0, "dev_G_rel": 0.0, "stable": True, "n_action_diff": 0, "seed": 1}), skipped)
