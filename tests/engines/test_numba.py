"""What is particular to the numba engine (its agreement with pymdp over the shared case table and the
mutation idioms is in ``test_parity.py``): it is pymdp's own Agent class, the compiled paths are the
ones really taken, what they do not cover runs pymdp's code, and cached values never go stale."""

import numpy as np
import pytest
from pymdp.legacy.agent import Agent as PymdpAgent

from pymdpbench import gate
from pymdpbench.engines import get_engine
from pymdpbench.engines import numba as numba_engine
from pymdpbench.models import random_model

Agent = numba_engine.Agent


def forbid_pymdp_paths(monkeypatch):
    """pymdp's own infer_states / infer_policies / sample_action made to fail: only compiled paths run."""

    def fail(*args, **kwargs):
        raise AssertionError("pymdp's own path was taken")

    for name in ("infer_states", "infer_policies", "sample_action"):
        monkeypatch.setattr(PymdpAgent, name, fail)


@pytest.fixture
def no_pymdp_paths(monkeypatch):
    forbid_pymdp_paths(monkeypatch)


@pytest.mark.parametrize(
    "states,obs,controls,afl,bfl,kwargs",
    [
        ([8], [4], [4], None, None, dict(policy_len=3)),
        ([4, 3], [4, 3], [2, 3], [[1, 0], [1]], [[0, 1], [1]], dict(policy_len=2, sampling_mode="full")),
        ([4, 3, 2], [4], [2, 1, 2], None, None, dict(use_param_info_gain=True, action_selection="stochastic")),
        ([5, 3], [4, 3], [3, 2], [[0], [0, 1]], None, dict(inference_algo="MMP", policy_len=2, inference_horizon=3)),
    ],
)
def test_steps_take_the_compiled_paths(no_pymdp_paths, states, obs, controls, afl, bfl, kwargs):
    model = random_model(1, states, obs, controls, A_factor_list=afl, B_factor_list=bfl, dirichlet=True)
    agent = Agent(**model.agent_kwargs(), **kwargs)
    learning = None if kwargs.get("inference_algo") == "MMP" else "pre"
    gate.run_trajectory(agent, gate.observation_sequence(1, model.num_obs, 4), action_seed=0, learning=learning)


def test_what_the_kernels_do_not_cover_runs_pymdps_code(capsys):
    model = random_model(2, [4, 3], [3], [2, 2], B_factor_list=[[0, 1], [1]])
    agent = Agent(**model.agent_kwargs(), inference_algo="MMP", policy_len=2, inference_horizon=2)
    assert isinstance(agent, PymdpAgent)
    agent.infer_states([0])
    assert "Factorized version" in capsys.readouterr().out  # pymdp's own MMP (it prints): factor interactions
    q_pi, _ = agent.infer_policies()
    assert q_pi.shape == (16,) and agent.F.shape == (16,)
    with pytest.raises(IndexError):  # an out-of-range outcome: pymdp's own error
        Agent(**model.agent_kwargs()).infer_states([7])


def test_an_in_place_edit_of_A_refreshes_the_cached_entropy():
    model = random_model(3, [6], [4], [3], density=0.5)
    agents = [get_engine("standard")(**model.agent_kwargs()), Agent(**model.agent_kwargs())]
    results = []
    for agent in agents:
        agent.infer_states([1])
        agent.infer_policies()
        agent.A[0][:, 2] = np.eye(4)[0]
        results.append(agent.infer_policies()[1])
    np.testing.assert_allclose(results[1], results[0], atol=1e-12)


def test_policy_arrays_are_read_only_so_no_edit_goes_unseen():
    agent = Agent(**random_model(4, [4], [3], [2]).agent_kwargs(), policy_len=2)
    agent.infer_states([0])
    agent.infer_policies()
    with pytest.raises(ValueError, match="read-only"):
        agent.policies[0][0, 0] = 1
    agent.policies[1] = np.array([[1], [1]])  # replacing one is seen: a repeated policy, as in pymdp
    _, G = agent.infer_policies()
    assert G[1] == G[3]


def test_warmup_compiles_this_agents_kernels_and_changes_nothing():
    model = random_model(5, [3, 2, 2], [3, 2], [2, 1, 2])
    agent = Agent(**model.agent_kwargs())
    state = np.random.get_state()[1].copy()
    assert agent.warmup() > 0.0 and numba_engine.warmup() > 0.0
    assert np.array_equal(np.random.get_state()[1], state)
    assert agent.action is None and agent.curr_timestep == 0 and agent.prev_actions is None
    signatures = {len(sig[0]) for sig in numba_engine.kernels.policy_values.signatures}
    assert 2 in signatures  # two modalities: this model's specialisation


def test_a_copied_agent_reads_its_own_arrays():
    """copy.deepcopy (and pickling) carries no cached view into the original's arrays."""
    import copy

    model = random_model(6, [5], [4], [3])
    agent = Agent(**model.agent_kwargs(), policy_len=2)
    agent.infer_states([0])
    agent.infer_policies()
    twin = copy.deepcopy(agent)
    twin.C[0][1] = 4.0
    reference = get_engine("standard")(**copy.deepcopy(model.agent_kwargs()), policy_len=2)
    reference.infer_states([0])
    reference.C[0][1] = 4.0
    np.testing.assert_allclose(twin.infer_policies()[1], reference.infer_policies()[1], atol=1e-12)
    assert not np.allclose(agent.infer_policies()[1], twin.infer_policies()[1])


def test_arrays_read_through_buffers_take_the_compiled_path_and_their_edits_are_seen(monkeypatch):
    """A transposed B (pymdp's T-maze has one) and an int C are read through buffers refilled at every
    call: the compiled path runs, and an in-place edit of the original arrays is what it computes."""
    import copy

    model = random_model(7, [4, 3], [4, 3], [3, 2])
    kwargs = model.agent_kwargs()
    kwargs["B"][0] = np.asfortranarray(kwargs["B"][0])
    kwargs["C"][0] = np.array([0, 1, 2, 0])
    assert not kwargs["B"][0].flags.c_contiguous

    def run(cls):
        np.random.seed(3)
        agent = cls(**copy.deepcopy(kwargs), policy_len=2)
        rows = []
        for t, obs in enumerate(gate.observation_sequence(7, model.num_obs, 4)):
            if t == 2:
                agent.B[0][:, :, 0] = agent.B[0][:, :, 1]
                agent.C[0][2] = 5
            qs = agent.infer_states([int(o) for o in obs])
            q_pi, G = agent.infer_policies()
            rows.append((np.concatenate(qs), q_pi, G, agent.sample_action()))
        return rows

    reference = run(get_engine("standard"))
    forbid_pymdp_paths(monkeypatch)
    for ref, got in zip(reference, run(Agent)):
        for x, y in zip(ref, got):
            np.testing.assert_allclose(y, x, atol=1e-12)


def _pymdp_generative_models():
    """pymdp's own generative models beyond the T-maze and grid worlds: the null-outcome T-maze, scene
    construction (time-varying C, a 48-state factor) and random dot motion."""
    from pymdp.legacy import utils
    from pymdp.legacy.envs.tmaze import TMazeEnvNullOutcome
    from pymdp.legacy.envs.visual_foraging import initialize_RDM_GM, initialize_scene_construction_GM

    env = TMazeEnvNullOutcome()
    C = utils.obj_array_zeros(env.num_obs)
    C[1][1], C[1][2] = 3.0, -3.0
    yield dict(A=env.get_likelihood_dist(), B=env.get_transition_dist(), C=C), 2
    for build, horizon in ((initialize_scene_construction_GM, 1), (initialize_RDM_GM, 2)):
        model = build()[0]
        yield {k: model[k] for k in ("A", "B", "C", "D")}, horizon


def _step_like_pymdp(monkeypatch, kwargs, horizon, steps=6):
    """The numba Agent, on compiled paths only, steps as pymdp's Agent does (1e-10, same actions)."""
    import copy

    rng = np.random.default_rng(0)
    stream = [[int(rng.integers(a.shape[0])) for a in kwargs["A"]] for _ in range(steps)]

    def run(cls):
        agent = cls(**copy.deepcopy(kwargs), policy_len=horizon)
        np.random.seed(1)
        rows = []
        for obs in stream:
            qs = agent.infer_states(obs)
            q_pi, G = agent.infer_policies()
            rows.append((np.concatenate(qs), q_pi, G, agent.sample_action()))
        return rows

    reference = run(PymdpAgent)
    forbid_pymdp_paths(monkeypatch)
    for ref, got in zip(reference, run(Agent)):
        for x, y in zip(ref, got):
            np.testing.assert_allclose(y, x, atol=1e-10)


@pytest.mark.parametrize("kwargs,horizon", list(_pymdp_generative_models()), ids=["tmaze-null", "scene", "rdm"])
def test_pymdps_own_generative_models_step_as_pymdp(monkeypatch, kwargs, horizon):
    _step_like_pymdp(monkeypatch, kwargs, horizon)


def test_a_model_large_enough_for_every_blas_product_steps_as_pymdp(monkeypatch):
    # B of 256 x 256 x 4 entries: its products under every action row by row (kernels.BLAS_ROW_ENTRIES)
    assert 256 * 256 * 4 >= numba_engine.kernels.BLAS_ROW_ENTRIES
    model = random_model(5, [256], [128], [4])
    _step_like_pymdp(monkeypatch, model.agent_kwargs(), 1, steps=3)
