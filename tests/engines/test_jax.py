"""The jax engine (pymdp 1.0's JAX Agent) against pymdp.legacy, through the correctness gate.

JAX compiles every agent instance (about a second each), so the models are few and small and
trajectories are shared between tests through module-scoped fixtures.
"""

import numpy as np
import pytest

from pymdpbench import gate
from pymdpbench.engines import get_engine, traits
from pymdpbench.engines.jax import Agent
from pymdpbench.engines.standard import Agent as LegacyAgent
from pymdpbench.models import random_model

STEPS = 12
#: the gate tolerance the registry declares for this engine
TOL = traits("jax").tolerance
#: exp(-16), the state info gain truncation and stabiliser of legacy's spm_MDP_G.
EXP_M16 = np.exp(-16)


def replay(model, steps=STEPS, learning=None, legacy_setup=None, **options):
    """(legacy reference, JAX replayed on the reference's actions, the JAX agent)."""
    observations = gate.observation_sequence(11, model.num_obs, steps)
    legacy = LegacyAgent(**model.agent_kwargs(), **options)
    if legacy_setup is not None:
        legacy_setup(legacy)
    reference = gate.run_trajectory(legacy, observations, 5, learning=learning)
    agent = Agent(**model.agent_kwargs(), **options)
    trajectory = gate.run_trajectory(agent, observations, 5, learning=learning, forced_actions=reference.actions)
    return reference, trajectory, agent


@pytest.fixture(scope="module")
def one_factor_h2():
    """One factor, 2 modalities, 3 actions, H=2: 9 policies."""
    return replay(random_model(1, num_states=[7], num_obs=[5, 3], num_controls=[3]), policy_len=2)


@pytest.fixture(scope="module")
def one_factor_16_states():
    return replay(random_model(2, num_states=[16], num_obs=[8], num_controls=[4]))


def test_registered_as_jax():
    assert get_engine("jax") is Agent
    assert Agent.replays_reference_actions


@pytest.mark.parametrize("case", ["one_factor_h2", "one_factor_16_states"])
def test_one_factor_passes_the_gate(case, request):
    reference, trajectory, _ = request.getfixturevalue(case)
    dev = gate.deviation(reference, trajectory)
    assert gate.passes(dev, TOL), dev
    # equal by configuration up to rounding: single-factor FPI is one exact shot in both
    assert dev["dev_qs"] < 1e-13
    assert dev["dev_q_pi"] < 1e-9


@pytest.mark.parametrize("case", ["one_factor_h2", "one_factor_16_states"])
def test_G_differs_by_the_info_gain_offset_only(case, request):
    """Dense A: G_jax - G_legacy = -H * sum(No) * exp(-16), the same for every policy."""
    reference, trajectory, agent = request.getfixturevalue(case)
    expected = -agent.policy_len * sum(agent.num_obs) * EXP_M16
    offset = trajectory.G - reference.G
    np.testing.assert_allclose(offset, expected, rtol=1e-3, atol=0)
    assert np.max(offset.max(axis=1) - offset.min(axis=1)) < 1e-9
    np.testing.assert_allclose(trajectory.q_pi, reference.q_pi, rtol=0, atol=1e-9)


def test_two_factors_equal_legacy_run_to_the_same_ten_sweeps():
    """Two factors differ from legacy only where legacy's dF rule stops the iteration early."""
    model = random_model(3, num_states=[4, 3], num_obs=[5, 4], num_controls=[3, 2])

    def ten_sweeps(legacy):
        legacy.inference_params = {"num_iter": 10, "dF": 1.0, "dF_tol": -1.0, "compute_vfe": True}

    reference, trajectory, _ = replay(model, legacy_setup=ten_sweeps)
    dev = gate.deviation(reference, trajectory)
    assert dev["dev_qs"] < 1e-12, dev
    assert dev["dev_q_pi"] < 1e-9, dev
    assert gate.passes(dev, TOL), dev


def test_empirical_prior_uses_the_action_set_from_outside():
    """Forced replay: ``agent.action`` assigned by the caller drives the next prior, B[:, :, a] @ qs."""
    model = random_model(4, num_states=[6], num_obs=[4], num_controls=[3])
    legacy, agent = LegacyAgent(**model.agent_kwargs()), Agent(**model.agent_kwargs())
    for engine in (legacy, agent):
        engine.infer_states([1])
        engine.infer_policies()
        engine.sample_action()
    own = int(agent.action[0])
    forced = (own + 1) % 3
    legacy.action = np.array([float(forced)])
    agent.action = np.array([float(forced)])
    expected = legacy.infer_states([2])[0]
    np.testing.assert_allclose(agent.infer_states([2])[0], expected, rtol=0, atol=1e-14)
    # and it is not what the agent's own action would have given
    own_prior = model.B[0][:, :, own] @ agent.qs[0]
    assert not np.allclose(expected, own_prior)


def test_learning_matches_legacy_on_dense_dirichlets():
    model = random_model(5, num_states=[5], num_obs=[4], num_controls=[3], dirichlet=True)
    for order in ("pre", "post"):
        observations = gate.observation_sequence(3, model.num_obs, 8)
        options = {"lr_pA": 0.5, "lr_pB": 0.7}
        legacy = LegacyAgent(**model.agent_kwargs(), **options)
        reference = gate.run_trajectory(legacy, observations, 1, learning=order)
        agent = Agent(**model.agent_kwargs(), **options)
        trajectory = gate.run_trajectory(agent, observations, 1, learning=order, forced_actions=reference.actions)
        dev = gate.deviation(reference, trajectory)
        assert gate.passes(dev, TOL), (order, dev)
        for name in ("A", "B", "pA", "pB"):
            np.testing.assert_allclose(getattr(agent, name)[0], getattr(legacy, name)[0], rtol=0, atol=1e-12,
                                       err_msg=f"{name} after learning ({order})")


def test_supports_states_its_reasons():
    plain = {"num_states": [8], "num_obs": [4], "num_controls": [4], "policy_len": 1}
    assert Agent.supports(plain) == (True, "")
    assert Agent.supports({**plain, "num_states": [4, 3], "num_controls": [3, 2]}) == (True, "")
    ok, reason = Agent.supports({**plain, "use_param_info_gain": True, "learning": True})
    assert not ok and "use_param_info_gain" in reason and "digamma" in reason
    assert Agent.supports({**plain, "use_param_info_gain": True}) == (True, "")  # legacy skips it without pA/pB
    ok, reason = Agent.supports({**plain, "learning": True, "density": 0.5})
    assert not ok and "mask" in reason


def test_constructor_refuses_what_supports_refuses():
    dense = random_model(6, num_states=[4], num_obs=[3], num_controls=[2], dirichlet=True)
    with pytest.raises(ValueError, match="use_param_info_gain"):
        Agent(**dense.agent_kwargs(), use_param_info_gain=True)
    sparse = random_model(6, num_states=[4], num_obs=[3], num_controls=[2], dirichlet=True, density=0.3)
    with pytest.raises(ValueError, match="mask"):
        Agent(**sparse.agent_kwargs())
    with pytest.raises(TypeError, match="inference_algo"):
        Agent(**dense.agent_kwargs(), inference_algo="MMP")


def test_warmup_compiles_without_changing_state(one_factor_16_states):
    model = random_model(2, num_states=[16], num_obs=[8], num_controls=[4])
    agent = Agent(**model.agent_kwargs())
    qs_before = agent.qs
    assert agent.warmup() > 0
    assert agent.action is None and agent.qs is qs_before and agent.q_pi is None
    reference, _, _ = one_factor_16_states
    observations = gate.observation_sequence(11, model.num_obs, 3)
    trajectory = gate.run_trajectory(agent, observations, 5, forced_actions=reference.actions)
    np.testing.assert_allclose(trajectory.qs, reference.qs[:3], rtol=0, atol=1e-13)


def test_deterministic_action_is_the_argmax_of_the_marginal(one_factor_h2):
    _, trajectory, agent = one_factor_h2
    for q_pi, action in zip(trajectory.q_pi, trajectory.actions):
        marginal = np.bincount(agent.policies[:, 0, 0], weights=q_pi, minlength=agent.num_controls[0])
        assert action[0] == np.argmax(marginal)


def test_stochastic_actions_follow_the_numpy_seed():
    model = random_model(7, num_states=[5], num_obs=[4], num_controls=[4])
    observations = gate.observation_sequence(0, model.num_obs, 10)
    options = {"action_selection": "stochastic", "alpha": 1.0}
    runs = [gate.run_trajectory(Agent(**model.agent_kwargs(), **options), observations, seed).actions
            for seed in (1, 1, 2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])
    seeded = [gate.run_trajectory(Agent(**model.agent_kwargs(), seed=9, **options), observations, s).actions
              for s in (1, 2)]
    np.testing.assert_array_equal(seeded[0], seeded[1])


def test_assigning_A_reaches_the_jax_model():
    model = random_model(8, num_states=[4], num_obs=[3], num_controls=[2])
    other = random_model(9, num_states=[4], num_obs=[3], num_controls=[2])
    agent = Agent(**model.agent_kwargs())
    agent.A = other.A
    legacy = LegacyAgent(**{**model.agent_kwargs(), "A": other.A})
    np.testing.assert_allclose(agent.infer_states([2])[0], legacy.infer_states([2])[0], rtol=0, atol=1e-14)
    np.testing.assert_array_equal(agent.A[0], other.A[0])
