"""The jax engine (pymdp 1.0's JAX Agent) against pymdp.legacy, through the correctness gate.

JAX compiles every agent instance (about a second each), so the models are few and small and
trajectories are shared between tests through module-scoped fixtures.
"""

import copy
import inspect

import numpy as np
import pytest
from pymdp.legacy.agent import Agent as PymdpAgent

from pymdpbench import gate
from pymdpbench.engines import get_engine, traits
from pymdpbench.engines.base import obj_array
from pymdpbench.engines.jax import SMALL_BYTES, Agent
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
            np.testing.assert_allclose(
                getattr(agent, name)[0],
                getattr(legacy, name)[0],
                rtol=0,
                atol=1e-12,
                err_msg=f"{name} after learning ({order})",
            )


def test_supports_states_its_reasons():
    plain = {"num_states": [8], "num_obs": [4], "num_controls": [4], "policy_len": 1}
    assert Agent.supports(plain) == (True, "")
    assert Agent.supports({**plain, "num_states": [4, 3], "num_controls": [3, 2]}) == (True, "")
    assert Agent.supports({**plain, "learning": True, "density": 0.5}) == (True, "")
    # refused even without pA/pB (where legacy skips it): supports() may be asked without the arrays
    ok, reason = Agent.supports({**plain, "use_param_info_gain": True})
    assert not ok and "use_param_info_gain" in reason and "digamma" in reason


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
    runs = [
        gate.run_trajectory(Agent(**model.agent_kwargs(), **options), observations, seed).actions for seed in (1, 1, 2)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])
    seeded = [
        gate.run_trajectory(Agent(**model.agent_kwargs(), seed=9, **options), observations, s).actions for s in (1, 2)
    ]
    np.testing.assert_array_equal(seeded[0], seeded[1])


# --- legacy keywords: refused by name, and supports() agrees with the constructor ------------

#: A model every legacy keyword can be tried on: one factor, 2 modalities, 3 actions, pA and pB.
KEYWORD_MODEL = random_model(30, num_states=[4], num_obs=[3, 2], num_controls=[3], dirichlet=True)
KEYWORD_DIMS = {"num_states": [4], "num_obs": [3, 2], "num_controls": [3], "policy_len": 1}


def non_default_values():
    """A valid non-default value of every keyword of pymdp.legacy's Agent.__init__ but A and B."""
    m = KEYWORD_MODEL
    return {
        "C": obj_array([np.arange(3.0), np.array([1.0, -1.0])]),
        "D": obj_array([np.array([0.4, 0.3, 0.2, 0.1])]),
        "E": np.array([0.5, 0.3, 0.2]),
        "H": obj_array([np.array([0.7, 0.1, 0.1, 0.1])]),
        "pA": copy.deepcopy(m.pA),
        "pB": copy.deepcopy(m.pB),
        "pD": obj_array([np.ones(4)]),
        "num_controls": [3],
        "policy_len": 2,
        "inference_horizon": 2,
        "control_fac_idx": [0],
        "policies": [np.array([[0]]), np.array([[2]])],
        "gamma": 4.0,
        "alpha": 2.0,
        "use_utility": False,
        "use_states_info_gain": False,
        "use_param_info_gain": True,
        "action_selection": "stochastic",
        "sampling_mode": "full",
        "inference_algo": "MMP",
        "inference_params": {"num_iter": 3},
        "modalities_to_learn": [0],
        "lr_pA": 0.5,
        "factors_to_learn": [0],
        "lr_pB": 0.5,
        "lr_pD": 0.5,
        "use_BMA": False,
        "policy_sep_prior": True,
        "save_belief_hist": True,
        "A_factor_list": [[0], [0]],
        "B_factor_list": [[0]],
        "sophisticated": True,
        "si_horizon": 2,
        "si_policy_prune_threshold": 0.1,
        "si_state_prune_threshold": 0.1,
        "si_prune_penalty": 100,
        "ii_depth": 5,
        "ii_threshold": 0.1,
    }


LEGACY_PARAMETERS = [
    name for name in inspect.signature(PymdpAgent.__init__).parameters if name not in ("self", "A", "B")
]


@pytest.mark.parametrize("name", LEGACY_PARAMETERS)
def test_supports_and_the_constructor_agree_on_every_legacy_keyword(name):
    values = non_default_values()
    assert name in values, f"no non-default test value for pymdp's keyword {name!r}"
    value = values[name]
    PymdpAgent(A=KEYWORD_MODEL.A, B=KEYWORD_MODEL.B, **{name: copy.deepcopy(value)})  # valid for legacy itself
    supported, reason = Agent.supports({**KEYWORD_DIMS, name: value})
    try:
        Agent(A=KEYWORD_MODEL.A, B=KEYWORD_MODEL.B, **{name: value})
    except (TypeError, ValueError) as error:
        assert not supported, f"supports() accepts {name}, the constructor refuses it: {error}"
        assert name in str(error) and name in reason, (str(error), reason)
    else:
        assert supported, f"supports() refuses {name} ({reason}), the constructor accepts it"


@pytest.mark.parametrize(
    "name, value",
    [
        ("pD", obj_array([np.ones(4)])),
        ("H", obj_array([np.array([0.7, 0.1, 0.1, 0.1])])),
        ("policies", np.zeros((2, 1, 1), dtype=int)),
        ("save_belief_hist", True),
        ("inference_algo", "MMP"),
        ("inference_horizon", 3),
        ("sophisticated", True),
    ],
)
def test_unsupported_keyword_is_refused_by_name(name, value):
    """Array-valued ones too: a TypeError naming the keyword, not numpy's ambiguous truth value."""
    with pytest.raises(TypeError, match=rf"does not support: {name}="):
        Agent(A=KEYWORD_MODEL.A, B=KEYWORD_MODEL.B, **{name: value})


def test_unknown_keyword_and_bad_control_settings_are_named():
    with pytest.raises(TypeError, match="unexpected keyword arguments: gamma_typo"):
        Agent(A=KEYWORD_MODEL.A, B=KEYWORD_MODEL.B, gamma_typo=1.0)
    with pytest.raises(TypeError, match=r"num_controls=\[2\] \(must equal B's last axes \[3\]\)"):
        Agent(A=KEYWORD_MODEL.A, B=KEYWORD_MODEL.B, num_controls=[2])
    assert not Agent.supports({**KEYWORD_DIMS, "num_controls": [1], "control_fac_idx": [0]})[0]


def test_positional_arguments_in_legacy_order():
    m = KEYWORD_MODEL
    agent = Agent(m.A, m.B, m.C, m.D, None, None, m.pA)
    assert agent.C is m.C and agent.D is m.D and agent.pA is not None
    with pytest.raises(TypeError, match="multiple values for: C"):
        Agent(m.A, m.B, m.C, C=m.C)


def test_keywords_legacy_stores_unused_are_stored():
    agent = Agent(A=KEYWORD_MODEL.A, B=KEYWORD_MODEL.B, si_horizon=2, lr_pD=0.5, inference_params={"num_iter": 3})
    assert agent.si_horizon == 2 and agent.lr_pD == 0.5
    assert agent.inference_params == PymdpAgent(A=KEYWORD_MODEL.A, B=KEYWORD_MODEL.B).inference_params


def mixed_model(seed, sparse):
    """One factor, 2 modalities, pA and pB; ``sparse`` ("A" or "B") with zeros, the other dense, so
    that every observation stays possible under the prior (see docs/engines-jax.md)."""
    dims = {"num_states": [5], "num_obs": [4, 3], "num_controls": [3], "dirichlet": True}  # as LEARNER
    dense, holed = random_model(seed, **dims), random_model(seed + 1, density=0.5, **dims)
    for name in (sparse, "p" + sparse):
        setattr(dense, name, getattr(holed, name))
    return dense


@pytest.mark.parametrize("sparse", ["A", "B"])
@pytest.mark.parametrize("order", ["pre", "post"])
def test_learning_on_a_model_with_zeros_matches_legacy(sparse, order):
    """Legacy counts only where A (B at the action) is non-zero; pymdp JAX would fill the zeros in."""
    model = mixed_model(40, sparse)
    observations = gate.observation_sequence(5, model.num_obs, 8)
    legacy = LegacyAgent(**copy.deepcopy(model.agent_kwargs()), lr_pA=3.0, lr_pB=3.0)
    reference = gate.run_trajectory(legacy, observations, 1, learning=order)
    agent = Agent(**copy.deepcopy(model.agent_kwargs()), lr_pA=3.0, lr_pB=3.0)
    trajectory = gate.run_trajectory(agent, observations, 1, learning=order, forced_actions=reference.actions)
    assert gate.passes(gate.deviation(reference, trajectory), TOL)
    for name in ("A", "B", "pA", "pB"):
        for x, y in zip(getattr(agent, name), getattr(legacy, name)):
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-12, err_msg=name)
    holes = [p == 0 for p in getattr(model, "p" + sparse)]
    assert any(h.any() for h in holes) and all(np.all(p[h] == 0) for p, h in zip(getattr(agent, "p" + sparse), holes))


# --- changes after construction: applied as legacy applies them, or refused by name ---------

PLAIN = random_model(21, num_states=[6], num_obs=[5, 3], num_controls=[3])
PLAIN_OTHER = random_model(23, num_states=[6], num_obs=[5, 3], num_controls=[3])
LEARNER = random_model(22, num_states=[5], num_obs=[4, 3], num_controls=[3], dirichlet=True)
TWO_FACTORS = random_model(24, num_states=[4, 3], num_obs=[5, 4], num_controls=[3, 2])
TWO_FACTORS_LEARNER = random_model(25, num_states=[4, 3], num_obs=[5], num_controls=[3, 2], dirichlet=True)


def ten_sweeps(agent):
    """Legacy's FPI without its dF stop, so that several factors compare exactly (see the module doc)."""
    agent.inference_params = {"num_iter": 10, "dF": 1.0, "dF_tol": -1.0, "compute_vfe": True}


def new_episode(agent):
    agent.action = None  # legacy uses D only before the first action (legacy/agent.py:505-511)


def edit_D(agent):
    agent.D[0][:] = [0.05, 0.05, 0.05, 0.05, 0.1, 0.7]
    new_episode(agent)


def assign_D(agent):
    agent.D = obj_array([np.array([0.7, 0.1, 0.05, 0.05, 0.05, 0.05])])
    new_episode(agent)


def scale_E(agent):
    agent.E[:3] *= 20.0


def swap_B_actions(agent):
    agent.B[0][:, :, 0], agent.B[0][:, :, 2] = agent.B[0][:, :, 2].copy(), agent.B[0][:, :, 0].copy()


def double_pA(agent):
    agent.pA[0] *= 30.0


#: (case id, model, constructor options, setup of both agents, edit, learning)
MUTATIONS = [
    ("A assigned", PLAIN, {"policy_len": 2}, None, lambda a: setattr(a, "A", copy.deepcopy(PLAIN_OTHER.A)), None),
    ("A[m] assigned", PLAIN, {"policy_len": 2}, None, lambda a: a.A.__setitem__(1, PLAIN_OTHER.A[1].copy()), None),
    (
        "A edited in place",
        PLAIN,
        {"policy_len": 2},
        None,
        lambda a: a.A[0].__setitem__(slice(None), a.A[0][::-1]),
        None,
    ),
    ("B assigned", PLAIN, {"policy_len": 2}, None, lambda a: setattr(a, "B", copy.deepcopy(PLAIN_OTHER.B)), None),
    ("B edited in place", PLAIN, {"policy_len": 2}, None, swap_B_actions, None),
    (
        "C assigned",
        PLAIN,
        {"policy_len": 2},
        None,
        lambda a: setattr(a, "C", obj_array([4.0 * np.eye(5)[4], np.zeros(3)])),
        None,
    ),
    ("C[m] assigned", PLAIN, {"policy_len": 2}, None, lambda a: a.C.__setitem__(0, 4.0 * np.eye(5)[1]), None),
    ("C edited in place (T-maze idiom)", PLAIN, {"policy_len": 2}, None, lambda a: a.C[1].__setitem__(1, 6.0), None),
    ("D assigned", PLAIN, {}, None, assign_D, None),
    ("D edited in place", PLAIN, {}, None, edit_D, None),
    ("E assigned", PLAIN, {}, None, lambda a: setattr(a, "E", np.array([0.9, 0.05, 0.05])), None),
    ("E edited in place", PLAIN, {"policy_len": 2}, None, scale_E, None),
    ("gamma", PLAIN, {"policy_len": 2}, None, lambda a: setattr(a, "gamma", 0.5), None),
    ("use_utility", PLAIN, {"policy_len": 2}, None, lambda a: setattr(a, "use_utility", False), None),
    ("use_states_info_gain", PLAIN, {"policy_len": 2}, None, lambda a: setattr(a, "use_states_info_gain", False), None),
    (
        "inference_params assigned",
        TWO_FACTORS,
        {},
        ten_sweeps,
        lambda a: setattr(a, "inference_params", {"num_iter": 2, "dF": 1.0, "dF_tol": -1.0, "compute_vfe": True}),
        None,
    ),
    (
        "inference_params edited in place",
        TWO_FACTORS,
        {},
        ten_sweeps,
        lambda a: a.inference_params.update(num_iter=1),
        None,
    ),
    (
        "action_selection",
        PLAIN,
        {"action_selection": "stochastic", "alpha": 1e-3},
        None,
        lambda a: setattr(a, "action_selection", "deterministic"),
        None,
    ),
    ("alpha", PLAIN, {"action_selection": "stochastic", "alpha": 1e-3}, None, lambda a: setattr(a, "alpha", 1e4), None),
    (
        "A of a learner assigned",
        LEARNER,
        {},
        None,
        lambda a: setattr(a, "A", copy.deepcopy(random_model(26, num_states=[5], num_obs=[4, 3], num_controls=[3]).A)),
        "post",
    ),
    ("B of a learner edited in place", LEARNER, {}, None, swap_B_actions, "post"),
    ("pA assigned", LEARNER, {}, None, lambda a: setattr(a, "pA", obj_array([30.0 * p for p in a.pA])), "post"),
    ("pA edited in place", LEARNER, {}, None, double_pA, "post"),
    ("pB assigned", LEARNER, {}, None, lambda a: setattr(a, "pB", obj_array([0.1 * p for p in a.pB])), "post"),
    ("pB edited in place", LEARNER, {}, None, lambda a: a.pB[0].__imul__(0.05), "post"),
    ("lr_pA", LEARNER, {}, None, lambda a: setattr(a, "lr_pA", 20.0), "post"),
    ("lr_pB", LEARNER, {}, None, lambda a: setattr(a, "lr_pB", 20.0), "post"),
    (
        "modalities_to_learn assigned",
        LEARNER,
        {"modalities_to_learn": [0, 1], "lr_pA": 20.0},
        None,
        lambda a: setattr(a, "modalities_to_learn", [1]),
        "post",
    ),
    (
        "modalities_to_learn edited in place",
        LEARNER,
        {"modalities_to_learn": [0, 1], "lr_pA": 20.0},
        None,
        lambda a: a.modalities_to_learn.remove(1),
        "post",
    ),
    (
        "factors_to_learn assigned",
        TWO_FACTORS_LEARNER,
        {"factors_to_learn": [0, 1], "lr_pB": 20.0},
        ten_sweeps,
        lambda a: setattr(a, "factors_to_learn", [1]),
        "post",
    ),
    (
        "factors_to_learn edited in place",
        TWO_FACTORS_LEARNER,
        {"factors_to_learn": [0, 1], "lr_pB": 20.0},
        ten_sweeps,
        lambda a: a.factors_to_learn.remove(1),
        "post",
    ),
    (
        "A with zeros assigned to a learner",
        LEARNER,
        {},
        None,
        lambda a: setattr(a, "A", copy.deepcopy(mixed_model(41, "A").A)),
        "post",
    ),
]


def run_edited(model, options, setup, edit, learning, steps=(3, 4)):
    """Legacy and JAX, each with its own copy of the model and options, ``steps[0]`` steps, the
    same edit on both, ``steps[1]`` more: [(trajectory after the edit, agent)] of legacy, JAX,
    and legacy without the edit (to show that the edit matters)."""
    observations = gate.observation_sequence(7, model.num_obs, sum(steps))
    before, after = observations[: steps[0]], observations[steps[0] :]
    runs = []
    for engine, edited in ((LegacyAgent, True), (Agent, True), (LegacyAgent, False)):
        agent = engine(**copy.deepcopy(model.agent_kwargs()), **copy.deepcopy(options))
        if setup is not None:
            setup(agent)
        forced = runs[0][2].actions if engine is Agent else None
        first = gate.run_trajectory(agent, before, 3, learning=learning, forced_actions=forced)
        if edited:
            edit(agent)
        elif edit in (assign_D, edit_D):
            new_episode(agent)
        forced = runs[0][0].actions if engine is Agent else None
        runs.append((gate.run_trajectory(agent, after, 4, learning=learning, forced_actions=forced), agent, first))
    return [run[:2] for run in runs]


@pytest.mark.parametrize("case", MUTATIONS, ids=[case[0] for case in MUTATIONS])
def test_a_change_after_construction_acts_as_in_legacy(case):
    name, model, options, setup, edit, learning = case
    (reference, legacy), (edited, agent), (unedited, _) = run_edited(model, options, setup, edit, learning)
    dev = gate.deviation(reference, edited)
    assert gate.passes(dev, TOL), dev
    assert agent.rebuilds <= 2  # the edit (and the setup) at most: no rebuild on an unchanged step
    changed = gate.deviation(reference, unedited)  # the edit mattered: without it legacy computes otherwise
    assert (
        max(changed["dev_qs"], changed["dev_q_pi"], changed["dev_G_rel"]) > 100 * TOL or changed["n_action_diff"] > 0
    ), changed
    if learning:
        for attribute in ("A", "B", "pA", "pB"):
            for x, y in zip(getattr(agent, attribute), getattr(legacy, attribute)):
                np.testing.assert_allclose(x, y, rtol=0, atol=TOL, err_msg=attribute)


def test_sampling_mode_changed_after_construction():
    """Full mode takes the best policy's first action, marginal mode the best marginal: q_pi set so they differ."""
    q_pi = np.full(9, 0.01)
    q_pi[0] = 0.3  # policy (0, 0)
    q_pi[3:6] = 0.21  # policies (1, *)
    chosen = {}
    for engine in (LegacyAgent, Agent):
        agent = engine(**copy.deepcopy(PLAIN.agent_kwargs()), policy_len=2)
        agent.infer_states([0, 0])
        agent.infer_policies()
        agent.q_pi = q_pi.copy()
        marginal = agent.sample_action()[0]
        agent.sampling_mode = "full"
        agent.q_pi[:] = q_pi  # and an in-place edit of q_pi
        chosen[engine] = (marginal, agent.sample_action()[0])
    assert chosen[Agent] == chosen[LegacyAgent] == (1, 0)


def test_qs_edited_in_place_is_the_next_prior():
    results = []
    for engine in (LegacyAgent, Agent):
        agent = engine(**copy.deepcopy(PLAIN.agent_kwargs()))
        agent.infer_states([1, 2])
        agent.action = np.array([1.0])
        agent.qs[0][:] = np.eye(6)[3]
        results.append(agent.infer_states([0, 1])[0])
    np.testing.assert_allclose(results[1], results[0], rtol=0, atol=1e-12)


def test_a_rebuild_is_counted_as_compile_time():
    agent = Agent(**copy.deepcopy(PLAIN.agent_kwargs()))
    agent.warmup()
    agent.infer_states([0, 0])
    agent.infer_policies()
    compiled = agent.compile_time_s
    assert compiled > 0 and agent.rebuilds == 0 and agent.rebuild_time_s == 0
    agent.infer_policies()
    assert agent.compile_time_s == compiled  # no change, no rebuild
    agent.C[1][1] = 3.0
    agent.infer_policies()
    assert agent.rebuilds == 1 and agent.rebuild_time_s > 0
    assert agent.compile_time_s == pytest.approx(compiled + agent.rebuild_time_s)
    agent.C = copy.deepcopy(agent.C)  # equal contents in new objects: nothing to rebuild
    agent.infer_policies()
    assert agent.rebuilds == 1


def set_policies_in_place(agent):
    agent.policies[0, 0, 0] = 1


#: (attribute named in the error, model, options, edit, the call that must refuse it)
REFUSALS = [
    ("policy_len", PLAIN, {}, lambda a: setattr(a, "policy_len", 2), "infer_policies"),
    ("policies", PLAIN, {}, lambda a: setattr(a, "policies", a.policies[:2].copy()), "infer_policies"),
    ("policies", PLAIN, {}, set_policies_in_place, "sample_action"),
    ("num_controls", PLAIN, {}, lambda a: setattr(a, "num_controls", [2]), "sample_action"),
    ("A_factor_list", TWO_FACTORS, {}, lambda a: a.A_factor_list[0].remove(1), "infer_states"),
    ("B_factor_list", TWO_FACTORS, {}, lambda a: setattr(a, "B_factor_list", [[0, 1], [1]]), "infer_states"),
    ("sophisticated", PLAIN, {}, lambda a: setattr(a, "sophisticated", True), "infer_policies"),
    ("inference_algo", PLAIN, {}, lambda a: setattr(a, "inference_algo", "MMP"), "infer_states"),
    ("H", PLAIN, {}, lambda a: setattr(a, "H", obj_array([np.eye(6)[0]])), "infer_policies"),
    ("I", PLAIN, {}, lambda a: setattr(a, "I", obj_array([np.eye(6)])), "infer_policies"),
    ("pD", PLAIN, {}, lambda a: setattr(a, "pD", obj_array([np.ones(6)])), "infer_states"),
    ("use_param_info_gain", LEARNER, {}, lambda a: setattr(a, "use_param_info_gain", True), "infer_policies"),
    ("use_param_info_gain", PLAIN, {}, lambda a: setattr(a, "use_param_info_gain", True), "infer_policies"),
    ("A has shapes", PLAIN, {}, lambda a: setattr(a, "A", copy.deepcopy(LEARNER.A)), "infer_states"),
    ("E has shapes", PLAIN, {}, lambda a: setattr(a, "E", np.ones(9) / 9), "infer_policies"),
    ("C has shapes", PLAIN, {}, lambda a: a.C.__setitem__(0, np.zeros(4)), "infer_policies"),
]


@pytest.mark.parametrize("named, model, options, edit, call", REFUSALS, ids=[r[0] + "-" + r[4] for r in REFUSALS])
def test_a_change_the_engine_cannot_apply_is_refused_by_name(named, model, options, edit, call):
    agent = Agent(**copy.deepcopy(model.agent_kwargs()), **options)
    obs = [0] * len(model.num_obs)
    agent.infer_states(obs)
    agent.infer_policies()
    agent.sample_action()
    edit(agent)
    arguments = {"infer_states": (obs,), "update_A": (obs,), "update_B": (agent.qs,)}.get(call, ())
    with pytest.raises(ValueError, match=named):
        getattr(agent, call)(*arguments)
    with pytest.raises(ValueError, match=named):  # and again: a refused change is never dropped
        getattr(agent, call)(*arguments)


def test_methods_outside_vanilla_inference_are_refused_by_name():
    agent = Agent(**copy.deepcopy(PLAIN.agent_kwargs()))
    with pytest.raises(ValueError, match="distr_obs"):
        agent.infer_states([np.ones(5) / 5, np.ones(3) / 3], distr_obs=True)
    with pytest.raises(ValueError, match="pD"):
        agent.update_D()


def test_reset_and_step_time_as_in_legacy():
    agents = [engine(**copy.deepcopy(LEARNER.agent_kwargs())) for engine in (LegacyAgent, Agent)]
    for agent in agents:
        for obs in ([0, 1], [2, 2]):
            agent.infer_states(obs)
            agent.infer_policies()
            agent.sample_action()
            agent.update_A(obs)
        agent.A = obj_array([a / 2 + 0.5 / a.shape[0] for a in agent.A])  # reset restores E[pA]
        agent.reset()
        agent.action = np.array([1.0])
    legacy, jax_agent = agents
    assert jax_agent.curr_timestep == legacy.curr_timestep == 0
    assert len(jax_agent.prev_actions) == len(legacy.prev_actions) == 2
    for x, y in zip(jax_agent.A, legacy.A):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-12)
    np.testing.assert_allclose(jax_agent.infer_states([1, 0])[0], legacy.infer_states([1, 0])[0], rtol=0, atol=1e-12)


def test_an_in_place_edit_of_a_large_array_is_seen():
    """B above SMALL_BYTES is compared with np.array_equal against a saved copy, not through bytes."""
    model = random_model(27, num_states=[60], num_obs=[6], num_controls=[3])
    assert model.B[0].nbytes > SMALL_BYTES
    results = []
    for engine in (LegacyAgent, Agent):
        agent = engine(**copy.deepcopy(model.agent_kwargs()))
        agent.infer_states([1])
        agent.action = np.array([2.0])
        agent.B[0][:, :, 2] = agent.B[0][:, :, 0]
        results.append((agent.infer_states([3])[0], agent.infer_policies()[1]))
    assert agent.rebuilds == 1
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=0, atol=TOL)
