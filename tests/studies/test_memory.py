"""The memory study: its grid, the share of non-zeros the resource guard uses, the caps, and the
bytes each variant holds."""

import importlib.util

import numpy as np
import pytest

from pymdpbench.cell import estimated_bytes, held_bytes, run_cell
from pymdpbench.studies import get_study

SETTINGS = {"states": [8, 32], "densities": [1.0, 0.25], "actions": 2, "obs_per_state": 0.5}


def engine_available(name):
    return importlib.util.find_spec(f"pymdpbench.engines.{name}") is not None


def test_points_cover_states_times_densities():
    points = get_study("memory").points(SETTINGS)
    assert [p["cell"] for p in points] == ["s8-d1", "s8-d0.25", "s32-d1", "s32-d0.25"]
    assert {p["obs"] for p in points if p["states"] == 32} == {16}
    assert all("memory_cap_mb" not in p for p in points)


def test_model_entries_match_the_drawn_share_of_non_zeros():
    study = get_study("memory")
    point = study.points({**SETTINGS, "states": [64], "densities": [0.1]})[0]
    entries, share = study.model_entries(point)
    model = study.build_model(point, seed=3)
    drawn = [np.asarray(x) for x in (*model.A, *model.B)]
    assert entries == sum(x.size for x in drawn)
    assert share == pytest.approx(sum(np.count_nonzero(x) for x in drawn) / entries, rel=0.05)
    assert estimated_bytes(study, point, "sparse") < 0.25 * estimated_bytes(study, point, "standard")


def test_run_cap_skips_a_too_large_cell_with_its_reason(tiny_timing):
    point = get_study("memory").points({**SETTINGS, "states": [32], "densities": [1.0]})[0]
    row = run_cell("memory", point, "standard", 1, tiny_timing, memory_cap_bytes=10_000)
    assert row["status"] == "skipped"
    assert "memory cap" in row["reason"] and row.get("model_bytes") is None
    small = get_study("memory").points({**SETTINGS, "states": [8], "densities": [1.0]})[0]
    assert run_cell("memory", small, "standard", 1, tiny_timing, memory_cap_bytes=10_000)["status"] == "ok"


def test_study_cap_skips_dense_but_not_sparse_and_the_point_has_no_reference(tiny_timing, tmp_path):
    if not engine_available("sparse"):
        pytest.skip("sparse engine not present")
    study = get_study("memory")
    # s32, density 0.25: dense 32*16 + 32*32*2 = 2560 entries = 20 KiB; sparse ~ 0.27 * 12 B * 2560 = 8.4 KiB
    point = study.points({**SETTINGS, "states": [32], "densities": [0.25], "memory_cap_mb": 0.01})[0]
    reference = tmp_path / "reference.npz"
    standard = run_cell("memory", point, "standard", 1, tiny_timing, write_reference=str(reference))
    assert standard["status"] == "skipped" and "memory study cap" in standard["reason"]
    sparse = run_cell("memory", point, "sparse", 1, tiny_timing, reference_path=str(reference))
    assert sparse["status"] == "ok" and sparse["model_bytes"] < 0.01 * 2**20
    assert sparse["gate_pass"] is None and sparse["reason"].startswith("no reference: standard skipped")
    assert sparse["tracemalloc_peak_bytes"] > 0 and sparse["rss_peak_bytes"] > 0


def test_float32_holds_half_of_numba():
    if not (engine_available("float32") and engine_available("numba")):
        pytest.skip("float32 or numba engine not present")
    from pymdpbench.engines import get_engine

    study = get_study("memory")
    point = study.points({**SETTINGS, "states": [32], "densities": [1.0]})[0]
    kwargs = study.build_model(point, seed=1).agent_kwargs()
    f64, f32 = get_engine("numba")(**kwargs), get_engine("float32")(**kwargs)
    assert held_bytes(f32.A) + held_bytes(f32.B) == (held_bytes(f64.A) + held_bytes(f64.B)) // 2
