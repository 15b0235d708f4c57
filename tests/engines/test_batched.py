"""The batched engine: every agent of a batch equals a single-agent engine (numba, float32, and pymdp's
own legacy Agent) on the same model, observations and draws; per-agent parameters; learning; refusals."""

import numba
import numpy as np
import pytest

from pymdpbench.engines import get_engine, traits
from pymdpbench.engines.base import obj_array
from pymdpbench.engines.batched import BatchedAgent, BatchedAgent32
from pymdpbench.models import random_model

STEPS = 4


def observations(model, batch_size, steps=STEPS, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(n, size=(steps, batch_size)) for n in model.num_obs], axis=-1)


def run_singles(Agent, kwargs_per_agent, obs, learn=False, seed=1):
    """Agents stepped one after the other, in agent order, each step; numpy's RNG seeded once.
    Returns qs, q_pi, G (steps, B, ...), actions (steps, B) and pA/pB of each agent at the end."""
    np.random.seed(seed)
    agents = [Agent(**kw) for kw in kwargs_per_agent]
    previous = [None] * len(agents)
    out = {"qs": [], "q_pi": [], "G": [], "action": []}
    for t in range(obs.shape[0]):
        rows = {k: [] for k in out}
        for i, agent in enumerate(agents):
            o = [int(x) for x in obs[t, i]]
            agent.infer_states(o)
            if learn:
                if t > 0:
                    agent.update_B(previous[i])
                agent.update_A(o)
            q_pi, G = agent.infer_policies()
            action = agent.sample_action()
            previous[i] = obj_array([np.array(q, dtype=float) for q in agent.qs])
            rows["qs"].append(np.array(agent.qs[0], dtype=float))
            rows["q_pi"].append(np.array(q_pi, dtype=float))
            rows["G"].append(np.array(G, dtype=float))
            rows["action"].append(int(action[0]))
        for k in out:
            out[k].append(np.array(rows[k]))
    result = {k: np.array(v) for k, v in out.items()}
    if learn:
        result["pA"] = [np.array([np.asarray(a.pA[m], dtype=float) for a in agents]) for m in range(len(agents[0].pA))]
        result["pB"] = np.array([np.asarray(a.pB[0], dtype=float) for a in agents])
    result["rng"] = np.random.get_state()[1].copy()
    return result


def run_batched(cls, kwargs, obs, learn=False, seed=1, **options):
    np.random.seed(seed)
    batched = cls(kwargs, obs.shape[1], **options)
    out = {"qs": [], "q_pi": [], "G": [], "action": []}
    previous = None
    for t in range(obs.shape[0]):
        if learn:
            batched.infer_states(obs[t])
            if t > 0:
                batched.update_B(previous)
            batched.update_A(obs[t])
            batched.infer_policies()
            actions = batched.sample_action()
            previous = batched.qs[0].copy()
        else:
            actions = batched.step(obs[t])
        out["qs"].append(batched.qs[0].astype(float))
        out["q_pi"].append(batched.q_pi.astype(float))
        out["G"].append(batched.G.astype(float))
        out["action"].append(actions[:, 0].copy())
    result = {k: np.array(v) for k, v in out.items()}
    if learn:
        result["pA"] = [np.asarray(p, dtype=float) for p in batched.pA]
        result["pB"] = np.asarray(batched.pB[0], dtype=float)
    result["rng"] = np.random.get_state()[1].copy()
    return result


def assert_same(batched, singles, tol):
    for key in ("qs", "q_pi", "G"):
        np.testing.assert_allclose(batched[key], singles[key], rtol=0, atol=tol, err_msg=key)
    np.testing.assert_array_equal(batched["action"], singles["action"])


def model_kwargs(seed=3, states=6, obs=(4, 3), actions=3, **extra):
    model = random_model(seed, [states], list(obs), [actions], density=0.7)
    return model, {**model.agent_kwargs(), **extra}


@pytest.mark.parametrize("policy_len", [1, 2])
@pytest.mark.parametrize("selection", ["deterministic", "stochastic"])
@pytest.mark.parametrize("sampling_mode", ["marginal", "full"])
def test_every_agent_equals_a_numba_agent(policy_len, selection, sampling_mode):
    model, kwargs = model_kwargs(policy_len=policy_len, action_selection=selection, sampling_mode=sampling_mode)
    obs = observations(model, 7)
    singles = run_singles(get_engine("numba"), [kwargs] * 7, obs)
    batched = run_batched(BatchedAgent, kwargs, obs)
    assert_same(batched, singles, 1e-10)
    np.testing.assert_array_equal(batched["rng"], singles["rng"])  # the same numpy draws, in the same order


def test_several_blocks_of_agents_equal_numba_agents():
    # more agents than one block of the shared-model kernel holds, the last block partial
    model, kwargs = model_kwargs(policy_len=2, action_selection="stochastic")
    obs = observations(model, 203, steps=2)
    singles = run_singles(get_engine("numba"), [kwargs] * 203, obs)
    batched = run_batched(BatchedAgent, kwargs, obs)
    assert_same(batched, singles, 1e-10)


@pytest.mark.parametrize("states", [1, 40])
def test_model_sizes_equal_numba_agents(states):
    # one state (the smallest block products) and more states than a vector of agents
    model, kwargs = model_kwargs(states=states, obs=(5, 41), policy_len=2)
    obs = observations(model, 11, steps=3)
    singles = run_singles(get_engine("numba"), [kwargs] * 11, obs)
    batched = run_batched(BatchedAgent, kwargs, obs)
    assert_same(batched, singles, 1e-10)


def test_every_agent_equals_pymdps_legacy_agent():
    model, kwargs = model_kwargs(policy_len=2, action_selection="stochastic")
    obs = observations(model, 5)
    singles = run_singles(get_engine("standard"), [kwargs] * 5, obs)
    batched = run_batched(BatchedAgent, kwargs, obs)
    assert_same(batched, singles, 1e-10)


def test_ties_are_broken_by_numpy_in_agent_order():
    # identity likelihood and transitions, flat preferences: every action's q is equal -> a tie per agent
    ns = 3
    kwargs = {"A": np.eye(ns), "B": np.stack([np.eye(ns)] * ns, axis=-1), "C": np.zeros(ns)}
    obs = np.zeros((STEPS, 9, 1), dtype=np.int64)
    singles = run_singles(get_engine("numba"), [kwargs] * 9, obs)
    batched = run_batched(BatchedAgent, kwargs, obs)
    assert len(set(singles["action"].ravel())) > 1  # ties were drawn, not argmax
    assert_same(batched, singles, 1e-10)
    np.testing.assert_array_equal(batched["rng"], singles["rng"])


def test_float32_within_tolerance_of_the_float32_engine():
    model, kwargs = model_kwargs(policy_len=2)
    obs = observations(model, 6)
    singles = run_singles(get_engine("float32"), [kwargs] * 6, obs)
    batched = run_batched(BatchedAgent32, kwargs, obs)
    assert batched["qs"].dtype == np.float64 and BatchedAgent32.dtype == np.float32
    assert_same(batched, singles, traits("float32").tolerance)


def test_per_agent_parameters_equal_agents_built_with_them():
    model, kwargs = model_kwargs(action_selection="stochastic")
    B = 5
    rng = np.random.default_rng(7)
    gamma, alpha = rng.uniform(1, 20, B), rng.uniform(1, 20, B)
    C = [rng.standard_normal((B, n)) for n in model.num_obs]
    C[1] = C[1][0]  # one modality's preferences shared, the other's per agent
    per_agent = [{**kwargs, "gamma": gamma[i], "alpha": alpha[i], "C": obj_array([C[0][i], C[1]])} for i in range(B)]
    obs = observations(model, B)
    singles = run_singles(get_engine("numba"), per_agent, obs)
    batched = run_batched(BatchedAgent, kwargs, obs, per_agent={"gamma": gamma, "alpha": alpha, "C": C})
    assert_same(batched, singles, 1e-10)


@pytest.mark.parametrize("cls,engine", [(BatchedAgent, "numba"), (BatchedAgent32, "float32")])
def test_learning_equals_single_agents(cls, engine):
    model = random_model(5, [5], [4, 3], [3], density=0.7, dirichlet=True)
    kwargs = {**model.agent_kwargs(), "lr_pA": 0.7, "lr_pB": 1.3, "action_selection": "stochastic"}
    obs = observations(model, 4, steps=5)
    singles = run_singles(get_engine(engine), [kwargs] * 4, obs, learn=True)
    batched = run_batched(cls, kwargs, obs, learn=True)
    tol = traits(engine).tolerance
    assert_same(batched, singles, tol)
    for m in range(2):
        np.testing.assert_allclose(batched["pA"][m], singles["pA"][m], rtol=tol, atol=tol)
    np.testing.assert_allclose(batched["pB"], singles["pB"], rtol=tol, atol=tol)
    assert not np.allclose(batched["pA"][0], model.pA[0])  # learning happened
    assert not np.allclose(batched["pA"][0][0], batched["pA"][0][1])  # per agent


def test_per_agent_pA_and_the_model_stay_shared_otherwise():
    model = random_model(5, [5], [4], [3], dirichlet=True)
    plain = {k: v for k, v in model.agent_kwargs().items() if k not in ("pA", "pB")}
    shared = BatchedAgent(plain, 64)
    assert shared.A[0].shape == (4, 5) and shared.B[0].shape == (5, 5, 3)  # one model for all agents
    mem = shared.memory()
    assert mem["per_agent"] <= 2 * mem["beliefs_and_parameters"]
    pA = [np.stack([model.pA[0] * (i + 1) for i in range(3)])]
    learner = BatchedAgent(plain, 3, per_agent={"pA": pA})
    np.testing.assert_allclose(learner.A[0][2], model.pA[0] / model.pA[0].sum(axis=0))
    np.testing.assert_array_equal(learner.pA[0], pA[0])


def test_uniform_draws_leave_deterministic_runs_unchanged_and_draw_once_per_step():
    model, kwargs = model_kwargs()
    obs = observations(model, 6)
    assert_same(run_batched(BatchedAgent, kwargs, obs, draws="uniform"), run_batched(BatchedAgent, kwargs, obs), 0)
    stochastic = {**kwargs, "action_selection": "stochastic"}
    fast = run_batched(BatchedAgent, stochastic, obs, draws="uniform")
    np.random.seed(1)
    for _ in range(STEPS):
        np.random.random_sample(6)
    np.testing.assert_array_equal(fast["rng"], np.random.get_state()[1])
    assert np.all((fast["action"] >= 0) & (fast["action"] < 3))


def test_uniform_draws_follow_the_action_distribution():
    # one step from D: every agent has the same p; the share of each action approaches p
    model, kwargs = model_kwargs(action_selection="stochastic", alpha=1.0)
    batched = BatchedAgent(kwargs, 20000, seed=4, draws="uniform")
    actions = batched.step(np.zeros((20000, 2), dtype=np.int64))[:, 0]
    p = batched._state.p[0]
    np.testing.assert_allclose(np.bincount(actions, minlength=3) / 20000, p, atol=0.015)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs NUMBA_NUM_THREADS >= 2")
def test_two_threads_give_the_same_numbers():
    model, kwargs = model_kwargs(policy_len=2, action_selection="stochastic")
    obs = observations(model, 33)
    one = run_batched(BatchedAgent, kwargs, obs, threads=1)
    two = run_batched(BatchedAgent, kwargs, obs, threads=2)
    assert_same(two, one, 0)


def test_reset_starts_again_from_D():
    model, kwargs = model_kwargs()
    obs = observations(model, 3)
    batched = BatchedAgent(kwargs, 3)
    first = batched.step(obs[0]).copy(), batched.qs[0].copy()
    batched.step(obs[1])
    batched.reset()
    assert np.all(batched.action == -1)
    np.testing.assert_array_equal(batched.step(obs[0]), first[0])
    np.testing.assert_array_equal(batched.qs[0], first[1])


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda kw: {**kw, "use_param_info_gain": True}, "parameter information gain"),
        (lambda kw: {**kw, "inference_algo": "MMP"}, "does not support: inference_algo"),
    ],
)
def test_unsupported_options_are_refused_by_name(change, message):
    _, kwargs = model_kwargs()
    with pytest.raises((ValueError, TypeError), match=message):
        BatchedAgent(change(kwargs), 4)


def test_several_factors_are_refused():
    model = random_model(1, [3, 2], [4], [2, 1])
    supported, reason = BatchedAgent.supports(
        {"num_states": model.num_states, "num_obs": model.num_obs, "num_controls": model.num_controls, "policy_len": 1}
    )
    assert not supported and "one hidden-state factor" in reason
    with pytest.raises(ValueError, match="one hidden-state factor"):
        BatchedAgent(model.agent_kwargs(), 4)


@pytest.mark.parametrize(
    "obs,message",
    [
        (np.zeros((4, 1), dtype=np.int64), r"shape \(4, 2\)"),
        (np.zeros((4, 2)), "integer array"),
        (np.array([[0, 0], [0, 3], [0, 0], [0, 0]]), "agent 1, modality 1 is 3, outside 0..2"),
    ],
)
def test_bad_observations_are_refused(obs, message):
    _, kwargs = model_kwargs()
    with pytest.raises(ValueError, match=message):
        BatchedAgent(kwargs, 4).step(obs)


def test_bad_construction_is_refused():
    model, kwargs = model_kwargs()
    with pytest.raises(ValueError, match="batch_size"):
        BatchedAgent(kwargs, 0)
    with pytest.raises(ValueError, match="threads"):
        BatchedAgent(kwargs, 4, threads=0)
    with pytest.raises(ValueError, match="draws"):
        BatchedAgent(kwargs, 4, draws="fast")
    with pytest.raises(ValueError, match="gamma"):
        BatchedAgent(kwargs, 4, per_agent={"gamma": np.ones(3)})
    with pytest.raises(ValueError, match=r"per_agent pA\[0\] has shape"):
        BatchedAgent(kwargs, 4, per_agent={"pA": [np.ones((4, 5, 6)), np.ones((4, 3, 6))]})
    with pytest.raises(ValueError, match=r"C\[1\] has shape \(3, 3\)"):
        BatchedAgent(kwargs, 4, per_agent={"C": [np.zeros((4, 4)), np.zeros((3, 3))]})
    with pytest.raises(ValueError, match="agent 2 has a column of zeros"):
        BatchedAgent(kwargs, 4, per_agent={"pB": [np.ones((4, 6, 6, 3)) * (np.arange(4) != 2)[:, None, None, None]]})
    with pytest.raises(ValueError, match="per_agent accepts"):
        BatchedAgent(kwargs, 4, per_agent={"beta": 1.0})
    with pytest.raises(ValueError, match="not normalised"):
        BatchedAgent({**kwargs, "A": np.ones((4, 6))}, 4)


def test_learning_needs_concentrations_and_actions():
    model = random_model(5, [5], [4], [3], dirichlet=True)
    plain = {k: v for k, v in model.agent_kwargs().items() if k not in ("pA", "pB")}
    with pytest.raises(TypeError, match="update_A needs pA"):
        BatchedAgent(plain, 2).update_A(np.zeros((2, 1), dtype=np.int64))
    learner = BatchedAgent(model.agent_kwargs(), 2)
    with pytest.raises(ValueError, match="last action"):
        learner.update_B(learner.qs[0].copy())
