"""The float32 engine against pymdp's legacy Agent (``engines.standard``) within its tolerance, 1e-4.

Same protocol as ``test_numba.py`` (``gate.run_trajectory``, identical observations and action seed),
on fewer cases. Actions must be identical on these seeded cases; in general float32 may flip a
near-tie (see ``pymdpbench.engines.float32``). Also checks that the engine really is float32: its
outputs, its model storage (half the float64 engine's bytes) and its compiled specialisations.
"""

import numpy as np
import pytest

from pymdpbench import gate
from pymdpbench.engines import get_engine
from pymdpbench.engines import float32 as float32_engine
from pymdpbench.engines import numba as numba_engine
from pymdpbench.models import random_model

Agent = float32_engine.Agent
MODES = {"md": ("marginal", "deterministic"), "ms": ("marginal", "stochastic"),
         "fd": ("full", "deterministic"), "fs": ("full", "stochastic")}

# (id, random_model kwargs, agent kwargs, learning, steps)
CASES = [
    ("1f-1m", dict(num_states=[8], num_obs=[4], num_controls=[4]), dict(), None, 8),
    ("1f-3m-sparse-H2", dict(num_states=[16], num_obs=[5, 3, 7], num_controls=[3], density=0.3),
     dict(policy_len=2, mode="fd"), None, 8),
    ("1f-64s-stochastic", dict(num_states=[64], num_obs=[32], num_controls=[8]), dict(mode="ms"), None, 8),
    ("1f-E-H3-full-stochastic", dict(num_states=[10], num_obs=[5, 4], num_controls=[3], E_policy_len=3),
     dict(policy_len=3, mode="fs"), None, 5),
    ("1f-learn-pre-paramIG", dict(num_states=[12], num_obs=[6, 3], num_controls=[4], density=0.4, dirichlet=True),
     dict(policy_len=2, use_param_info_gain=True), "pre", 8),
    ("1f-learn-post", dict(num_states=[9], num_obs=[4], num_controls=[3], dirichlet=True),
     dict(policy_len=2, use_param_info_gain=True, mode="ms"), "post", 8),
    ("2f-afl-bfl-H2", dict(num_states=[5, 4], num_obs=[3, 4], num_controls=[2, 2], density=0.4,
                           A_factor_list=[[0], [0, 1]], B_factor_list=[[0, 1], [1]]),
     dict(policy_len=2, mode="fs"), None, 8),
    ("3f-learn-pre-paramIG", dict(num_states=[4, 3, 2], num_obs=[4, 3], num_controls=[2, 3, 1], density=0.5,
                                  A_factor_list=[[0, 2], [1]], B_factor_list=[[0, 1], [1], [2, 0]], dirichlet=True),
     dict(policy_len=2, use_param_info_gain=True), "pre", 6),
]


def build(seed, model_kwargs, agent_kwargs, steps):
    model = random_model(seed, **model_kwargs)
    kwargs = dict(agent_kwargs)
    kwargs["sampling_mode"], kwargs["action_selection"] = MODES[kwargs.pop("mode", "md")]
    return model, gate.observation_sequence(seed, model.num_obs, steps), kwargs


@pytest.mark.parametrize("seed,model_kwargs,agent_kwargs,learning,steps",
                         [pytest.param(i, *c[1:], id=c[0]) for i, c in enumerate(CASES)])
def test_matches_legacy_within_float32_tolerance(seed, model_kwargs, agent_kwargs, learning, steps):
    model, observations, kwargs = build(seed, model_kwargs, agent_kwargs, steps)
    ref_agent = get_engine("standard")(**model.agent_kwargs(), **kwargs)
    ref = gate.run_trajectory(ref_agent, observations, action_seed=seed, learning=learning)
    agent = Agent(**model.agent_kwargs(), **kwargs)
    traj = gate.run_trajectory(agent, observations, action_seed=seed, learning=learning)
    dev = gate.deviation(ref, traj)
    assert gate.passes(dev, Agent.tolerance), dev
    assert dev["dev_q_pi"] > 1e-12, "float32 arithmetic should not reproduce float64 bit for bit"
    for name in ("A", "B", "pA", "pB"):
        ref_arrays, arrays = getattr(ref_agent, name), getattr(agent, name)
        if ref_arrays is None:
            assert arrays is None
            continue
        for x, y in zip(ref_arrays, arrays):
            assert y.dtype == np.float32
            np.testing.assert_allclose(y, x, rtol=0, atol=Agent.tolerance)


def test_outputs_are_float32_and_model_memory_is_halved():
    model = random_model(50, [32], [16, 8], [4], dirichlet=True)
    a32 = Agent(**model.agent_kwargs(), policy_len=2, use_param_info_gain=True)
    a64 = numba_engine.Agent(**model.agent_kwargs(), policy_len=2, use_param_info_gain=True)
    assert a32._buf.dtype == np.float32 and a32._buf.nbytes * 2 == a64._buf.nbytes
    qs = a32.infer_states([3, 1])
    q_pi, G = a32.infer_policies()
    assert qs[0].dtype == q_pi.dtype == G.dtype == np.float32
    a32.sample_action()
    a32.update_A([3, 1])
    assert all(a.dtype == np.float32 for a in a32.A) and all(p.dtype == np.float32 for p in a32.pA)


def test_multi_factor_path_stays_float32():
    model = random_model(51, [4, 3], [5], [2, 3], dirichlet=True)
    agent = Agent(**model.agent_kwargs(), policy_len=2, use_param_info_gain=True)
    qs = agent.infer_states([2])
    q_pi, G = agent.infer_policies()
    assert all(q.dtype == np.float32 for q in qs) and q_pi.dtype == G.dtype == np.float32
    assert all(a.dtype == np.float32 for a in agent._A2) and all(b.dtype == np.float32 for b in agent._Bt)


def test_kernels_have_float32_specialisations():
    """numba compiled the hot kernels for float32 buffers (no silent upcast to the float64 versions)."""
    model = random_model(52, [8], [4], [4])
    agent = Agent(**model.agent_kwargs(), policy_len=2)
    agent.infer_states([0])
    agent.infer_policies()
    for kernel in (numba_engine._posterior_single, numba_engine._policies_single):
        dtypes = {sig[0].dtype.name for sig in kernel.signatures}
        assert "float32" in dtypes, (kernel, dtypes)


def test_stochastic_draw_probabilities_are_float64_and_normalised():
    model = random_model(53, [16], [8], [6])
    agent = Agent(**model.agent_kwargs(), action_selection="stochastic", sampling_mode="full", policy_len=2)
    agent.infer_states([1])
    agent.infer_policies()
    p = agent._draw_probabilities(agent._draw_region[:len(agent.policies)])
    assert p.dtype == np.float64 and abs(p.sum() - 1.0) < 1e-15
    np.random.seed(0)
    assert agent.sample_action().shape == (1,)


def test_declared_tolerance():
    assert Agent.tolerance == 1e-4 and numba_engine.Agent.tolerance == 1e-10
    assert Agent.supports({"num_states": [8]}) == (True, "")
