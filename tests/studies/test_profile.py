"""The profile study: grid, the top-function summary, and a cell with the standard agent whose
profile names pymdp's own functions."""

import marshal
import pstats

from pymdpbench import cell, figures, results, tables
from pymdpbench.studies import get_study
from pymdpbench.studies.profile import function_name, profile_functions, top_functions, write_pstats

SETTINGS = {"states": [4, 16], "observations": 3, "actions": 2, "horizon": 2, "steps": 4, "top": 6}


def test_points_over_states_with_steps_and_top():
    points = get_study("profile").points(SETTINGS)
    assert [p["cell"] for p in points] == ["s4-o3-a2-h2", "s16-o3-a2-h2"]
    assert all(p["profile_steps"] == 4 and p["top"] == 6 for p in points)


def test_function_names():
    assert (
        function_name(("/x/site-packages/pymdp/legacy/maths.py", 517, "spm_MDP_G"))
        == "pymdp/legacy/maths.py:517(spm_MDP_G)"
    )
    assert (
        function_name(("~", 0, "<method 'dot' of 'numpy.ndarray' objects>"))
        == "<method 'dot' of 'numpy.ndarray' objects>"
    )


def test_top_functions_by_own_and_cumulative_time():
    # (primitive calls, calls, own s, cumulative s, callers)
    stats = {
        ("a.py", 1, "outer"): (1, 1, 0.1, 1.0, {}),
        ("a.py", 2, "hot"): (5, 5, 0.6, 0.6, {}),
        ("a.py", 3, "mid"): (2, 2, 0.2, 0.3, {}),
        ("~", 0, "<method 'disable' of '_lsprof.Profiler' objects>"): (1, 1, 9.0, 9.0, {}),
    }
    top = top_functions(stats, 1)
    assert top["profile_function"] == ["a.py:2(hot)", "a.py:1(outer)"]  # top own + top cumulative, by own time
    assert top["profile_calls"] == [5, 1]
    assert abs(top["profile_total_s"] - 0.9) < 1e-12  # the profiler's own call is left out


def test_standard_profile_names_pymdp_hot_spots(tiny_timing, tmp_path):
    point = get_study("profile").points(SETTINGS)[1]
    row = cell.run_cell("profile", point, "standard", 2, tiny_timing)
    assert row["status"] == "ok" and row["profile_steps"] == 4
    names = row["profile_function"]
    assert any(name.endswith("(spm_MDP_G)") and "pymdp/legacy/maths.py" in name for name in names)
    assert any("(calc_states_info_gain" in name for name in names)
    assert (
        len({len(row[c]) for c in ("profile_function", "profile_calls", "profile_own_s", "profile_cumulative_s")}) == 1
    )
    assert all(own <= cumulative + 1e-12 for own, cumulative in zip(row["profile_own_s"], row["profile_cumulative_s"]))
    assert sum(row["profile_own_s"]) <= row["profile_total_s"] + 1e-12

    path = tmp_path / "standard.parquet"
    results.write_rows([row], path, {})
    write_pstats(path, tmp_path / "standard.pstats")
    loaded = pstats.Stats(str(tmp_path / "standard.pstats"))
    assert any(function == "spm_MDP_G" for _, _, function in loaded.stats)

    df = tables.load(path)
    functions = profile_functions(df)
    assert (functions["calls_per_step"] > 0).all() and functions["own_share"].sum() <= 1 + 1e-9
    assert "spm_MDP_G" in tables.markdown(df)
    figures.render("profile_top", path, [tmp_path / "top.png"])
    assert (tmp_path / "top.png").stat().st_size > 1000


def test_skipped_cell_gives_an_empty_pstats_file(tmp_path):
    path = tmp_path / "skipped.parquet"
    results.write_rows([{"study": "profile", "cell": "s4-o3-a2-h2", "variant": "x", "status": "skipped"}], path, {})
    write_pstats(path, tmp_path / "skipped.pstats")
    assert marshal.loads((tmp_path / "skipped.pstats").read_bytes()) == {}
