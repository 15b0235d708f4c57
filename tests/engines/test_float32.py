"""What is particular to the float32 engine (its agreement with pymdp is in ``test_parity.py``): the
model and every output in float32, half the model bytes of the float64 engine, float32 kernel
specialisations, and draws made from float64 probabilities."""

import numpy as np

from pymdpbench.engines import float32 as float32_engine
from pymdpbench.engines import numba as numba_engine
from pymdpbench.engines import traits
from pymdpbench.engines.numba import kernels
from pymdpbench.models import random_model

Agent = float32_engine.Agent


def model_bytes(agent):
    return sum(a.nbytes for name in ("A", "B", "pA", "pB") for a in getattr(agent, name))


def test_outputs_and_model_are_float32_and_model_memory_is_halved():
    model = random_model(50, [32], [16, 8], [4], dirichlet=True)
    a32 = Agent(**model.agent_kwargs(), policy_len=2, use_param_info_gain=True)
    a64 = numba_engine.Agent(**model.agent_kwargs(), policy_len=2, use_param_info_gain=True)
    assert model_bytes(a32) * 2 == model_bytes(a64)
    qs = a32.infer_states([3, 1])
    q_pi, G = a32.infer_policies()
    assert qs[0].dtype == q_pi.dtype == G.dtype == np.float32
    a32.sample_action()
    a32.update_A([3, 1])  # pymdp's learning computes in float64: the engine keeps the result in float32
    assert all(a.dtype == np.float32 for a in a32.A) and all(p.dtype == np.float32 for p in a32.pA)


def test_assignments_are_held_in_float32_and_in_place_edits_are_seen():
    model = random_model(51, [4, 3], [5, 2], [2, 3])
    agent = Agent(**model.agent_kwargs())
    agent.C = model.C  # float64 in
    assert all(c.dtype == np.float32 for c in agent.C)
    before = agent.infer_policies()[1].copy()
    agent.C[1][1] = 3.0
    after = agent.infer_policies()[1]
    assert not np.allclose(before, after)


def test_kernels_have_float32_specialisations():
    """numba compiled the kernels for float32 arrays (no silent upcast to the float64 versions)."""
    model = random_model(52, [8], [4], [4])
    agent = Agent(**model.agent_kwargs(), policy_len=2)
    agent.infer_states([0])
    agent.infer_policies()
    for kernel in (kernels.infer_states, kernels.policy_values):
        dtypes = {sig[-1].dtype.name for sig in kernel.signatures}
        assert "float32" in dtypes, (kernel, dtypes)


def test_stochastic_draw_probabilities_are_float64_and_normalised():
    agent = Agent(**random_model(53, [16], [8], [6]).agent_kwargs())
    p = agent._draw_probabilities(np.full(7, 1 / 7, dtype=np.float32))
    assert p.dtype == np.float64 and abs(p.sum() - 1.0) < 1e-15


def test_declared_traits():
    assert traits("float32").tolerance == 1e-4 and traits("numba").tolerance == 1e-10
    assert traits("float32").bytes_per_entry == 4 and Agent.supports({"num_states": [8]}) == (True, "")
