"""The batch study: its grid, which variant runs which mode, and throughput measured in each mode."""

import pytest

from pymdpbench.engines import get_engine
from pymdpbench.studies import get_study

SETTINGS = {"states": 3, "observations": 2, "actions": 2, "batch_sizes": [1, 4],
            "modes": ["sequential", "multiprocessing", "vectorised"], "processes": 2, "rounds": 2, "samples": 2}


def point(mode, batch_size):
    return next(p for p in get_study("batch").points(SETTINGS) if p["cell"] == f"{mode}-b{batch_size}")


def measure(variant, mode, batch_size):
    study = get_study("batch")
    p = point(mode, batch_size)
    kwargs = {**study.build_model(p, seed=2).agent_kwargs(), **study.agent_options(p)}
    return study.measure(get_engine(variant), kwargs, p, seed=2, timing={})


def test_points_are_modes_times_batch_sizes():
    points = get_study("batch").points(SETTINGS)
    assert [p["cell"] for p in points] == ["sequential-b1", "sequential-b4", "multiprocessing-b1",
                                           "multiprocessing-b4", "vectorised-b1", "vectorised-b4"]
    assert {p.get("threads") for p in points if p["mode"] == "multiprocessing"} == {2}
    assert all("threads" not in p for p in points if p["mode"] != "multiprocessing")


def test_vectorised_mode_is_the_jax_variant_only():
    study = get_study("batch")
    assert study.supports(point("vectorised", 4), "jax") == (True, "")
    supported, reason = study.supports(point("vectorised", 4), "numba")
    assert not supported and "no batched kernel" in reason
    assert not study.supports(point("vectorised", 4), "standard")[0]
    assert study.supports(point("sequential", 4), "standard") == (True, "")


def test_sequential_throughput_is_positive():
    out = measure("standard", "sequential", 4)
    assert out["throughput_agent_steps_s"] > 0 and out["batch_workers"] == 1


def test_pool_steps_agents_in_several_processes():
    # standard agents take ~1 ms a step, long enough for both workers to take a chunk
    out = measure("standard", "multiprocessing", 4)
    assert out["throughput_agent_steps_s"] > 0
    assert out["batch_workers"] == 2


def test_vectorised_jax_throughput_is_positive():
    pytest.importorskip("jax")
    out = measure("jax", "vectorised", 4)
    assert out["throughput_agent_steps_s"] > 0 and out["batch_workers"] == 1
