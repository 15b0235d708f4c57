"""The batch study: its grid, which variant runs which mode, and throughput measured in each mode."""

import numpy as np
import pytest

from pymdpbench.engines import get_engine
from pymdpbench.studies import get_study

SETTINGS = {
    "states": 3,
    "observations": 2,
    "actions": 2,
    "batch_sizes": [1, 4],
    "modes": ["sequential", "multiprocessing", "vectorised"],
    "processes": 2,
    "rounds": 2,
    "samples": 2,
}


def point(mode, batch_size):
    return next(p for p in get_study("batch").points(SETTINGS) if p["cell"] == f"{mode}-b{batch_size}")


def measure(variant, mode, batch_size):
    study = get_study("batch")
    p = point(mode, batch_size)
    kwargs = {**study.build_model(p, seed=2).agent_kwargs(), **study.agent_options(p)}
    return study.measure(get_engine(variant), kwargs, p, seed=2, timing={})


def test_points_are_modes_times_batch_sizes():
    points = get_study("batch").points(SETTINGS)
    assert [p["cell"] for p in points] == [
        "sequential-b1",
        "sequential-b4",
        "multiprocessing-b1",
        "multiprocessing-b4",
        "vectorised-b1",
        "vectorised-b4",
    ]
    assert {p.get("threads") for p in points if p["mode"] == "multiprocessing"} == {2}
    assert {p.get("threads") for p in points if p["mode"] == "vectorised"} == {1}
    assert all("threads" not in p for p in points if p["mode"] == "sequential")


def test_vectorised_points_repeat_at_each_thread_count():
    points = get_study("batch").points({**SETTINGS, "modes": ["vectorised"], "vectorised_threads": [1, 2]})
    assert [(p["cell"], p["threads"]) for p in points] == [
        ("vectorised-b1", 1),
        ("vectorised-b1-t2", 2),
        ("vectorised-b4", 1),
        ("vectorised-b4-t2", 2),
    ]


def test_vectorised_mode_needs_a_batched_form():
    study = get_study("batch")
    for variant in ("jax", "numba", "float32"):
        assert study.supports(point("vectorised", 4), variant) == (True, "")
    supported, reason = study.supports(point("vectorised", 4), "standard")
    assert not supported and "no batched form" in reason
    assert study.supports(point("sequential", 4), "standard") == (True, "")


@pytest.mark.parametrize("variant", ["numba", "float32"])
def test_vectorised_batched_engine_checks_every_agent(variant):
    out = measure(variant, "vectorised", 4)
    assert out["throughput_agent_steps_s"] > 0 and out["batch_workers"] == 1
    assert out["throughput_ci_low"] <= out["throughput_agent_steps_s"] <= out["throughput_ci_high"]
    assert out["batch_agents_checked"] == 4 and out["batch_n_action_diff"] == 0
    assert out["batch_dev"] <= (1e-10 if variant == "numba" else 1e-4)
    # at 3 states and 2 actions the action probabilities, G and the action weigh as much as qs, q_pi
    assert out["beliefs_parameters_bytes"] < out["memory_per_agent_bytes"] < 3 * out["beliefs_parameters_bytes"]


def test_batch_check_catches_a_wrong_batched_form():
    from pymdpbench.engines.batched import BatchedAgent
    from pymdpbench.studies.batch import check_batch

    class Wrong(BatchedAgent):  # a batched form that forgets the previous action (prior D every step)
        def step(self, observations):
            self._state.action[:] = -1
            return super().step(observations)

    study = get_study("batch")
    p = point("vectorised", 4)
    kwargs = {**study.build_model(p, seed=2).agent_kwargs(), **study.agent_options(p)}
    stream = np.random.default_rng(0).integers(2, size=(3, 4, 1))
    assert check_batch(BatchedAgent, get_engine("numba"), kwargs, stream, 5, 1)[:2] == (pytest.approx(0, abs=1e-12), 0)
    dev, _, checked = check_batch(Wrong, get_engine("numba"), kwargs, stream, 5, 1)
    assert dev > 1e-3 and checked == 4


def test_sequential_throughput_is_positive():
    out = measure("standard", "sequential", 4)
    assert out["throughput_agent_steps_s"] > 0 and out["batch_workers"] == 1
    assert out["memory_per_agent_bytes"] > 0


def test_pool_steps_agents_in_several_processes():
    # standard agents take ~1 ms a step, long enough for both workers to take a chunk
    out = measure("standard", "multiprocessing", 4)
    assert out["throughput_agent_steps_s"] > 0
    assert out["batch_workers"] == 2


def test_vectorised_jax_throughput_is_positive():
    pytest.importorskip("jax")
    out = measure("jax", "vectorised", 4)
    assert out["throughput_agent_steps_s"] > 0 and out["batch_workers"] == 1
