"""The numba engine against pymdp's legacy Agent (``engines.standard``), float64, tolerance 1e-10.

Every case replays the same observations and action seed through both agents with
``gate.run_trajectory`` and requires beliefs, policy posterior and G within 1e-10 and every action
identical; learning cases also compare the learned A, B, pA, pB. The cases cover 1-3 factors, 1-3
modalities, 2-64 states, 1-8 actions, horizons 1-4, sparse and dense A/B, A_factor_list and
B_factor_list dependencies, uncontrolled factors, non-uniform E, 2-D C, learning before and after
the action, parameter info gain, exact ties, and all four sampling modes.
"""

import functools

import numpy as np
import pytest

from pymdpbench import gate
from pymdpbench.engines import get_engine
from pymdpbench.engines import numba as numba_engine
from pymdpbench.models import random_model

Agent = numba_engine.Agent
MODES = [("marginal", "deterministic"), ("marginal", "stochastic"), ("full", "deterministic"), ("full", "stochastic")]


class DeferredLogs(Agent):
    """The path taken on machines where numpy's log is vectorised, forced on."""

    defer_logs = True


def _case(name, states, obs, controls, H=1, T=8, density=1.0, afl=None, bfl=None, E=False, dirichlet=False,
          learning=None, c2d=False, mode=0, tie=False, seed=0, **agent_kwargs):
    return pytest.param(dict(states=states, obs=obs, controls=controls, H=H, T=T, density=density, afl=afl, bfl=bfl,
                             E=E, dirichlet=dirichlet, learning=learning, c2d=c2d, mode=mode, tie=tie, seed=seed,
                             agent_kwargs=agent_kwargs), id=name)


CASES = [
    # one factor (the compiled fast path)
    _case("1f-1m-dense", [8], [4], [4]),
    _case("1f-3m-sparse-H2-full", [16], [5, 3, 7], [3], H=2, density=0.3, mode=2),
    _case("1f-2m-H4", [8], [6, 2], [4], H=4, T=4, seed=1),
    _case("1f-64s-8a-stochastic", [64], [32], [8], mode=1, seed=2),
    _case("1f-E-H2-full-stochastic", [12], [6], [3], H=2, E=True, mode=3, seed=3),
    _case("1f-C2d-H3", [10], [5, 4], [3], H=3, T=5, c2d=True, density=0.5, seed=4),
    _case("1f-learn-pre-paramIG", [12], [6, 3], [4], H=2, density=0.4, dirichlet=True, learning="pre",
          use_param_info_gain=True, seed=5),
    _case("1f-learn-post-stochastic", [9], [4], [3], H=2, dirichlet=True, learning="post", mode=1,
          use_param_info_gain=True, lr_pA=0.5, lr_pB=2.0, seed=6),
    _case("1f-learn-no-paramIG", [6], [3], [2], dirichlet=True, learning="pre", seed=7),
    _case("1f-no-utility", [8], [4], [4], H=2, use_utility=False, seed=8),
    _case("1f-no-state-IG", [8], [4], [4], H=2, use_states_info_gain=False, mode=3, seed=9),
    _case("1f-one-action", [5], [3], [1], H=2, seed=10),
    _case("1f-2-states", [2], [2], [2], H=3, mode=1, seed=11),
    _case("1f-ties", [6], [3], [3], H=2, tie=True, seed=12),
    _case("1f-ties-full", [6], [3], [3], H=1, tie=True, mode=2, seed=13),
    # several factors (numpy joint contractions + compiled fixed-point iteration)
    _case("2f-dense", [4, 3], [5], [2, 3], seed=20),
    _case("2f-afl-bfl-sparse-H2-full-stoch", [5, 4], [3, 4], [2, 2], H=2, density=0.4,
          afl=[[0], [0, 1]], bfl=[[0, 1], [1]], mode=3, seed=21),
    _case("3f-uncontrolled-learn-pre", [4, 3, 2], [4, 3], [2, 3, 1], H=2, density=0.5,
          afl=[[0, 2], [1]], bfl=[[0, 1], [1], [2, 0]], dirichlet=True, learning="pre", use_param_info_gain=True,
          seed=22),
    _case("2f-learn-post-subsets", [3, 4], [3, 2, 2], [2, 2], H=2, dirichlet=True, learning="post",
          afl=[[0], [1], [0, 1]], use_param_info_gain=True, modalities_to_learn=[0, 2], factors_to_learn=[1],
          lr_pA=0.7, seed=23),
    _case("2f-unsorted-afl", [4, 3], [4, 3], [2, 3], afl=[[1, 0], [1]], seed=24),
    _case("2f-unobserved-factor", [4, 5], [3], [2, 2], H=2, afl=[[0]], mode=1, seed=25),
    _case("3f-E-C2d-marginal-stoch", [3, 2, 2], [2, 3], [2, 2, 2], H=2, E=True, c2d=True, mode=1, seed=26),
    _case("2f-ties", [3, 3], [3], [2, 2], H=2, tie=True, seed=27),
    _case("2f-64-states", [8, 8], [6], [4, 2], density=0.5, T=4, seed=28),
]


def build(spec):
    """(model, observations, agent kwargs) of a case."""
    model = random_model(spec["seed"], spec["states"], spec["obs"], spec["controls"], A_factor_list=spec["afl"],
                         B_factor_list=spec["bfl"], density=spec["density"], dirichlet=spec["dirichlet"],
                         E_policy_len=spec["H"] if spec["E"] else None)
    rng = np.random.default_rng(spec["seed"] + 1000)
    if spec["c2d"]:
        model.C[0] = rng.standard_normal((model.num_obs[0], spec["H"] + 1))
    if spec["tie"]:
        # two equivalent actions on factor 0: identical B[..., 0] and B[..., 1] make exact ties
        for arrays in (model.B, model.pB):
            if arrays is not None:
                arrays[0][..., 1] = arrays[0][..., 0]
    sampling_mode, action_selection = MODES[spec["mode"]]
    kwargs = dict(policy_len=spec["H"], sampling_mode=sampling_mode, action_selection=action_selection,
                  **spec["agent_kwargs"])
    observations = gate.observation_sequence(spec["seed"], model.num_obs, spec["T"])
    return model, observations, kwargs


@functools.lru_cache(maxsize=None)
def reference(case_id):
    """Trajectory and final agent of pymdp's legacy Agent (computed once per case)."""
    spec = {p.id: p.values[0] for p in CASES}[case_id]
    model, observations, kwargs = build(spec)
    agent = get_engine("standard")(**model.agent_kwargs(), **kwargs)
    return gate.run_trajectory(agent, observations, action_seed=spec["seed"], learning=spec["learning"]), agent


def run_engine(cls, spec):
    model, observations, kwargs = build(spec)
    agent = cls(**model.agent_kwargs(), **kwargs)
    return gate.run_trajectory(agent, observations, action_seed=spec["seed"], learning=spec["learning"]), agent


def max_abs_diff(a, b):
    if a is None or b is None:
        assert a is None and b is None
        return 0.0
    return max(float(np.max(np.abs(np.asarray(x, dtype=float) - np.asarray(y, dtype=float)))) for x, y in zip(a, b))


def check_against_reference(cls, case, tolerance):
    """The gate (qs, q_pi, G within tolerance, identical actions) and the learned model within tolerance."""
    ref_traj, ref_agent = reference(case["id"])
    traj, agent = run_engine(cls, case)
    dev = gate.deviation(ref_traj, traj)
    assert gate.passes(dev, tolerance), dev
    for name in ("A", "B", "pA", "pB"):
        assert max_abs_diff(getattr(ref_agent, name), getattr(agent, name)) <= tolerance, name
    return dev


def _with_ids():
    return [pytest.param(dict(p.values[0], id=p.id), id=p.id) for p in CASES]


@pytest.mark.parametrize("case", _with_ids())
def test_matches_legacy(case):
    check_against_reference(Agent, case, Agent.tolerance)


@pytest.mark.parametrize("case", [c for c in _with_ids() if c.id in ("1f-2m-H4", "1f-C2d-H3", "1f-learn-pre-paramIG")])
def test_deferred_logs_match_legacy(case):
    """The two-call path (info-gain logs taken by numpy) gives the same numbers."""
    check_against_reference(DeferredLogs, case, Agent.tolerance)


@pytest.mark.parametrize("seed", range(6))
def test_random_small_models(seed):
    """Seeded random models: 1-3 factors, 1-3 modalities, random sizes, modes and options."""
    rng = np.random.default_rng(seed)
    F, M = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    states = [int(n) for n in rng.integers(2, 6 if F > 1 else 33, size=F)]
    controls = [int(n) for n in rng.integers(1, 4, size=F)]
    H = int(rng.integers(1, 3))
    afl = [sorted(rng.choice(F, size=int(rng.integers(1, F + 1)), replace=False).tolist()) for _ in range(M)]
    spec = dict(states=states, obs=[int(n) for n in rng.integers(2, 6, size=M)], controls=controls, H=H, T=5,
                density=float(rng.choice([1.0, 0.5])), afl=afl, bfl=None, E=bool(rng.integers(2)),
                dirichlet=True, learning=[None, "pre", "post"][seed % 3], c2d=bool(rng.integers(2)),
                mode=seed % 4, tie=False, seed=100 + seed,
                agent_kwargs=dict(use_param_info_gain=bool(rng.integers(2))))
    model, observations, kwargs = build(spec)
    ref = gate.run_trajectory(get_engine("standard")(**model.agent_kwargs(), **kwargs), observations,
                              action_seed=spec["seed"], learning=spec["learning"])
    traj = gate.run_trajectory(Agent(**model.agent_kwargs(), **kwargs), observations,
                               action_seed=spec["seed"], learning=spec["learning"])
    dev = gate.deviation(ref, traj)
    assert gate.passes(dev, Agent.tolerance), (spec, dev)


def test_rng_state_matches_legacy_after_stochastic_run():
    """Same numpy RNG calls as legacy: the global RNG ends in the same state."""
    case = dict(CASES[3].values[0], id=CASES[3].id)
    model, observations, kwargs = build(case)
    ref = get_engine("standard")(**model.agent_kwargs(), **kwargs)
    gate.run_trajectory(ref, observations, action_seed=7)
    ref_state = np.random.get_state()[1].copy()
    gate.run_trajectory(Agent(**model.agent_kwargs(), **kwargs), observations, action_seed=7)
    assert np.array_equal(np.random.get_state()[1], ref_state)


def test_gate_detects_a_wrong_engine():
    """Negative control: a slightly different gamma must fail the gate."""
    case = dict(CASES[0].values[0], id=CASES[0].id)
    model, observations, kwargs = build(case)
    ref_traj, _ = reference(case["id"])
    agent = Agent(**model.agent_kwargs(), **kwargs)
    agent.gamma = 16.001
    dev = gate.deviation(ref_traj, gate.run_trajectory(agent, observations, action_seed=case["seed"]))
    assert not gate.passes(dev, Agent.tolerance)


def test_assigning_model_arrays_takes_effect():
    """Assigning A, B, C, E or gamma between steps behaves as in legacy (packed copies are refreshed)."""
    model = random_model(30, [6], [4, 3], [3], density=0.6)
    other = random_model(31, [6], [4, 3], [3], density=0.6, E_policy_len=2)
    obs = gate.observation_sequence(30, model.num_obs, 4)
    agents = [get_engine("standard")(**model.agent_kwargs(), policy_len=2), Agent(**model.agent_kwargs(), policy_len=2)]
    results = []
    for agent in agents:
        np.random.seed(0)
        agent.infer_states(list(obs[0]))
        agent.infer_policies()
        agent.sample_action()
        agent.A, agent.B, agent.C, agent.E = other.A, other.B, other.C, other.E
        agent.gamma, agent.use_states_info_gain = 4.0, False
        qs = agent.infer_states(list(obs[1]))
        q_pi, G = agent.infer_policies()
        results.append((qs[0], q_pi, G, agent.sample_action()))
    for ref, got in zip(*results):
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


def test_unusual_call_orders_match_legacy():
    """Settings changed between infer_states and infer_policies, sampling again from an old q_pi,
    and infer_states twice in a row (a one-factor step evaluates policies ahead; this must not show)."""
    model = random_model(33, [6], [4, 3], [3], density=0.7)
    obs = [list(o) for o in gate.observation_sequence(33, model.num_obs, 5)]
    records = []
    for cls in (get_engine("standard"), Agent):
        agent = cls(**model.agent_kwargs(), policy_len=2, action_selection="stochastic")
        np.random.seed(1)
        record = []
        agent.infer_states(obs[0])
        record += list(agent.infer_policies()) + [agent.sample_action()]
        agent.infer_states(obs[1])
        agent.gamma = 2.0
        record += list(agent.infer_policies()) + [agent.sample_action()]
        record += [agent.infer_states(obs[2])[0], agent.sample_action()]
        record += [agent.infer_states(obs[3])[0]]
        record += list(agent.infer_policies()) + [agent.sample_action(), agent.infer_states(obs[4])[0]]
        records.append(record)
    for ref, got in zip(*records):
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("states", [[6], [3, 4]], ids=["one-factor", "two-factors"])
def test_assigning_dirichlet_parameters_later(states):
    """pA / pB given after construction (new packed storage) behave as in legacy, learning included."""
    model = random_model(32, states, [4, 3], [3] * len(states), density=0.6, dirichlet=True)
    obs = gate.observation_sequence(32, model.num_obs, 5)
    kwargs = {k: v for k, v in model.agent_kwargs().items() if k not in ("pA", "pB")}
    trajectories, agents = [], []
    for cls in (get_engine("standard"), Agent):
        agent = cls(**kwargs, policy_len=2, use_param_info_gain=True)
        agent.pA, agent.pB = model.pA, model.pB
        trajectories.append(gate.run_trajectory(agent, obs, action_seed=3, learning="pre"))
        agents.append(agent)
    assert gate.passes(gate.deviation(*trajectories), Agent.tolerance)
    for name in ("A", "B", "pA", "pB"):
        assert max_abs_diff(getattr(agents[0], name), getattr(agents[1], name)) <= Agent.tolerance, name


def test_outputs_and_attributes():
    model = random_model(40, [5, 3], [4], [2, 3], dirichlet=True)
    agent = Agent(**model.agent_kwargs(), policy_len=2)
    qs = agent.infer_states([1])
    assert qs.dtype == object and [q.shape for q in qs] == [(5,), (3,)]
    q_pi, G = agent.infer_policies()
    assert q_pi.shape == G.shape == (36,) and agent.policies.shape == (36, 2, 2)
    action = agent.sample_action()
    assert action.dtype == np.float64 and action.shape == (2,)
    assert agent.A[0].shape == (4, 5, 3) and agent.B[1].shape == (3, 3, 3) and agent.pB[0].shape == (5, 5, 2)
    np.testing.assert_allclose(agent.A[0], model.A[0], atol=1e-15)
    np.testing.assert_allclose(agent.B[0], model.pB[0] / model.pB[0].sum(axis=0), atol=1e-15)


def test_update_without_dirichlet_raises_like_legacy():
    model = random_model(41, [4], [3], [2])
    agent = Agent(**model.agent_kwargs())
    agent.infer_states([0])
    with pytest.raises(TypeError):
        agent.update_A([0])
    with pytest.raises(TypeError):
        agent.update_B(agent.qs)


def test_supports_and_warmup():
    assert Agent.supports({"num_states": [8], "num_obs": [4], "num_controls": [4], "policy_len": 1}) == (True, "")
    ok, reason = Agent.supports({"inference_algo": "MMP"})
    assert not ok and "MMP" in reason
    assert not Agent.supports({"distr_obs": True})[0]
    state = np.random.get_state()[1].copy()
    assert Agent.warmup() >= 0.0
    assert np.array_equal(np.random.get_state()[1], state)
    assert numba_engine._posterior_single.signatures and numba_engine._policies_single.signatures
