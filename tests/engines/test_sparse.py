"""The sparse engine against pymdp's legacy Agent, dense input against sparse input, and its memory."""

import copy
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from pymdpbench import gate
from pymdpbench.engines import get_engine, traits
from pymdpbench.engines.base import normalise, obj_array
from pymdpbench.engines.sparse import Agent, SparseLikelihood, SparseTransitions, to_dense
from pymdpbench.models import random_model, sparse_model

TOL = traits("sparse").tolerance
MODES = [("marginal", "deterministic"), ("marginal", "stochastic"), ("full", "deterministic"), ("full", "stochastic")]


def reference_and_sparse(model, observations, action_seed, learning=None, **options):
    reference = gate.run_trajectory(
        get_engine("standard")(**model.agent_kwargs(), **options), observations, action_seed, learning=learning
    )
    other = gate.run_trajectory(Agent(**model.agent_kwargs(), **options), observations, action_seed, learning=learning)
    return reference, other


def one_factor_case(case):
    """Seeded draw: states 2-64, actions 1-8, horizon 1-3, density 0.2-1.

    The number of actions is capped so that legacy's per-state loop (policies x horizon x states) stays short.
    """
    rng = np.random.default_rng(1000 + case)
    num_states = int(rng.integers(2, 65))
    num_obs = [int(n) for n in rng.integers(2, 17, size=int(rng.integers(1, 3)))]
    policy_len = 1 + (case // 3) % 3
    num_controls = max(
        n for n in range(1, int(rng.integers(1, 9)) + 1) if n == 1 or n**policy_len * policy_len * num_states <= 3000
    )
    density = float(rng.uniform(0.2, 1.0))
    return num_states, num_obs, num_controls, policy_len, density


@pytest.mark.parametrize("case", range(24))
def test_matches_legacy_on_random_one_factor_models(case):
    num_states, num_obs, num_controls, policy_len, density = one_factor_case(case)
    learning = (None, "pre", "post")[case % 3]
    sampling_mode, action_selection = MODES[case % 4]
    model = random_model(
        case,
        [num_states],
        num_obs,
        [num_controls],
        density=density,
        dirichlet=learning is not None,
        E_policy_len=policy_len if case % 5 == 0 else None,
    )
    observations = gate.observation_sequence(case, num_obs, 6)
    reference, other = reference_and_sparse(
        model,
        observations,
        action_seed=case,
        learning=learning,
        policy_len=policy_len,
        sampling_mode=sampling_mode,
        action_selection=action_selection,
        use_param_info_gain=case % 4 == 1,
    )
    dev = gate.deviation(reference, other)
    assert gate.passes(dev, TOL), dev


@pytest.mark.parametrize("case", range(6))
def test_matches_legacy_on_factored_models(case):
    """Several factors (Jacobi FPI with the dF stop), partial A_factor_list, an uncontrolled factor, learning."""
    rng = np.random.default_rng(2000 + case)
    num_states = [int(n) for n in rng.integers(2, 7, size=2 + case % 2)]
    num_controls = [int(n) for n in rng.integers(1, 4, size=len(num_states))]
    num_obs = [int(n) for n in rng.integers(2, 7, size=2)]
    A_factor_list = [[0, 1], [1]] if case % 2 else None
    learning = (None, "pre", "post")[case % 3]
    model = random_model(
        case,
        num_states,
        num_obs,
        num_controls,
        A_factor_list=A_factor_list,
        density=0.5 + 0.1 * case,
        dirichlet=learning is not None,
    )
    sampling_mode, action_selection = MODES[case % 4]
    policy_len = 2 if case % 2 and np.prod(num_controls) <= 4 else 1
    reference, other = reference_and_sparse(
        model,
        gate.observation_sequence(case, num_obs, 5),
        action_seed=case,
        learning=learning,
        policy_len=policy_len,
        sampling_mode=sampling_mode,
        action_selection=action_selection,
        use_param_info_gain=learning is not None,
    )
    dev = gate.deviation(reference, other)
    assert gate.passes(dev, TOL), dev


def test_two_dimensional_C_uses_one_column_per_step():
    model = random_model(7, [12], [5], [3], density=0.6)
    model.C[0] = np.random.default_rng(7).standard_normal((5, 3))
    reference, other = reference_and_sparse(model, gate.observation_sequence(7, [5], 5), 7, policy_len=3)
    assert gate.passes(gate.deviation(reference, other), TOL)


def test_sparse_model_matches_legacy_on_its_dense_copy():
    """Permutation B and 3 non-zeros per column of A: beliefs concentrate, so the exp(-16) truncation bites."""
    model = sparse_model(3, num_states=48, num_obs=20, num_controls=4, nnz_per_column=3)
    observations = gate.observation_sequence(3, model.num_obs, 8)
    reference = gate.run_trajectory(
        get_engine("standard")(**to_dense(model).agent_kwargs(), policy_len=2), observations, 3
    )
    other = gate.run_trajectory(Agent(**model.agent_kwargs(), policy_len=2), observations, 3)
    dev = gate.deviation(reference, other)
    assert gate.passes(dev, TOL), dev


def test_sparse_built_and_dense_built_inputs_give_the_same_trajectory():
    model = sparse_model(5, num_states=40, num_obs=16, num_controls=3)
    dense = to_dense(model)
    as_lists = {
        "A": [model.A[0].matrix.tocsr()],
        "B": [[sp.coo_array(b) for b in model.B[0].matrices]],
        "C": model.C,
        "D": model.D,
    }
    observations = gate.observation_sequence(5, model.num_obs, 8)
    runs = [
        gate.run_trajectory(Agent(**kwargs, policy_len=2, action_selection="stochastic"), observations, 5)
        for kwargs in (model.agent_kwargs(), dense.agent_kwargs(), as_lists)
    ]
    for other in runs[1:]:
        dev = gate.deviation(runs[0], other)
        assert dev["dev_qs"] == dev["dev_q_pi"] == dev["dev_G"] == 0.0 and dev["n_action_diff"] == 0, dev


def test_a_wrong_engine_fails_the_gate():
    """The comparison is sensitive: dropping the state info gain is caught."""
    model = random_model(11, [20], [6], [4], density=0.5)
    observations = gate.observation_sequence(11, [6], 6)
    reference = gate.run_trajectory(get_engine("standard")(**model.agent_kwargs()), observations, 11)
    other = gate.run_trajectory(Agent(**model.agent_kwargs(), use_states_info_gain=False), observations, 11)
    assert not gate.passes(gate.deviation(reference, other), TOL)


def test_learning_keeps_the_sparsity_pattern():
    model = sparse_model(2, num_states=30, num_obs=12, num_controls=2)
    dense = to_dense(model)
    agent = Agent(**model.agent_kwargs(), pA=dense.A * 5.0, pB=dense.B * 2.0)
    nnz = (agent.pA[0].matrix.nnz, [b.nnz for b in agent.pB[0].matrices])
    qs_prev = agent.qs.copy()
    agent.infer_states([3])
    agent.infer_policies()
    agent.sample_action()
    agent.update_A([3])
    agent.update_B(qs_prev)
    assert (agent.pA[0].matrix.nnz, [b.nnz for b in agent.pB[0].matrices]) == nnz
    assert agent.A[0].matrix.nnz == nnz[0]
    np.testing.assert_allclose(agent.A[0].toarray().sum(axis=0), 1.0)
    assert agent.pA[0].toarray()[3].sum() > 5.0 * dense.A[0][3].sum()
    # the model's own arrays are untouched
    np.testing.assert_array_equal(model.A[0].toarray(), dense.A[0])


def test_large_model_is_never_densified():
    """16,384 states: dense A would take 1 GiB and dense B 8.6 GB; the sparse run stays within a few MB."""
    num_states, num_obs = 16384, 8192
    warm = Agent(**sparse_model(1, 64, 32, 4).agent_kwargs())  # numba loads its kernels outside the window
    warm.infer_states([0])
    warm.infer_policies()
    tracemalloc.start()
    model = sparse_model(0, num_states, num_obs, num_controls=4)
    agent = Agent(**model.agent_kwargs())
    agent.infer_states([0])
    agent.infer_policies()
    agent.sample_action()
    _, build_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    baseline, _ = tracemalloc.get_traced_memory()
    for o in (5, 17, 4000):
        agent.infer_states([o])
        q_pi, G = agent.infer_policies()
        agent.sample_action()
    _, step_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    arrays = sum(a.nbytes for a in agent.A) + sum(b.nbytes for b in agent.B)
    dense_bytes = 8 * num_obs * num_states + 8 * num_states * num_states * 4
    assert build_peak < 3 * arrays < dense_bytes / 1000
    assert step_peak - baseline <= arrays, (step_peak - baseline, arrays)  # a step's temporaries
    # everything traced (model, agent, its caches and a step's temporaries) within 2x the arrays' bytes
    assert step_peak <= 2 * arrays, step_peak / arrays
    assert np.isclose(q_pi.sum(), 1.0) and np.all(np.isfinite(G))


def test_validation_without_densifying():
    A = sp.csc_array(np.array([[0.5, 1.0], [0.4, 0.0]]))
    B = [[sp.identity(2, format="csr")]]
    with pytest.raises(ValueError, match=r"A\[0\] is not normalised: column \(0,\)"):
        Agent(A=[A], B=B)
    with pytest.raises(ValueError, match="negative"):
        Agent(A=[sp.csc_array(np.array([[1.5, 1.0], [-0.5, 0.0]]))], B=B)
    with pytest.raises(ValueError, match="one sparse matrix"):
        Agent(A=[sp.identity(2, format="csc")], B=[sp.identity(2, format="csr")])
    factored = random_model(0, [4, 3], [2], [2, 2])
    with pytest.raises(ValueError, match=r"A\[0\] has shape \(2, 3, 4\)"):
        Agent(A=np.array([factored.A[0].reshape(2, 3, 4), None], dtype=object)[:1], B=factored.B)
    with pytest.raises(TypeError, match="pA"):
        Agent(A=[sp.identity(2, format="csc")], B=B).update_A([0])


def test_sparse_model_layout():
    model = sparse_model(1, num_states=1000, num_obs=300, num_controls=3, nnz_per_column=4)
    assert isinstance(model.A[0], SparseLikelihood) and isinstance(model.B[0], SparseTransitions)
    assert model.num_states == [1000] and model.num_obs == [300] and model.num_controls == [3]
    A = model.A[0].matrix
    assert A.shape == (300, 1000) and np.all(np.diff(A.indptr) == 4)
    np.testing.assert_allclose(A.sum(axis=0), 1.0)
    for b in model.B[0].matrices:
        assert b.nnz == 1000 and np.array_equal(np.sort(b.indices), np.arange(1000))
    assert model.nbytes < 200_000


# --- the legacy interface: keywords, refusals, bookkeeping ------------------------------------


def test_legacy_keywords_are_pymdps_signature():
    import inspect

    from pymdp.legacy.agent import Agent as Legacy

    from pymdpbench.engines.base import LEGACY_KEYWORDS

    signature = {
        name: p.default
        for name, p in inspect.signature(Legacy.__init__).parameters.items()
        if name not in ("self", "A", "B")
    }
    assert LEGACY_KEYWORDS == signature


def non_default_values(model, policy_len=2):
    """A value other than the legacy default for every keyword of the legacy Agent (valid for ``model``)."""
    rng = np.random.default_rng(3)
    policies = np.array([[[0, 0], [1, 0]], [[1, 0], [0, 0]], [[1, 0], [1, 0]]])
    return {
        "C": obj_array([rng.standard_normal(n) for n in model.num_obs]),
        "D": obj_array([np.full(n, 1.0 / n) for n in model.num_states]),
        "E": np.array([0.25, 0.75]),  # 2 policies: 2 x 1 controls, policy_len 1
        "H": obj_array([np.full(n, 1.0 / n) for n in model.num_states]),
        "pA": obj_array([a * 4.0 for a in to_dense(model).A]),
        "pB": obj_array([b * 4.0 for b in to_dense(model).B]),
        "pD": obj_array([np.full(n, 2.0) for n in model.num_states]),
        "num_controls": list(model.num_controls),
        "policy_len": policy_len,
        "inference_horizon": 2,
        "control_fac_idx": [0],
        "policies": policies,
        "gamma": 4.0,
        "alpha": 2.0,
        "use_utility": False,
        "use_states_info_gain": False,
        "use_param_info_gain": True,
        "action_selection": "stochastic",
        "sampling_mode": "full",
        "inference_algo": "MMP",
        "inference_params": {"num_iter": 3, "dF": 1.0, "dF_tol": 0.001, "compute_vfe": True},
        "modalities_to_learn": [0],
        "lr_pA": 0.5,
        "factors_to_learn": [1],
        "lr_pB": 0.5,
        "lr_pD": 0.5,
        "use_BMA": False,
        "policy_sep_prior": True,
        "save_belief_hist": True,
        "A_factor_list": [[0, 1], [1]],
        "B_factor_list": [[0, 1], [1]],
        "sophisticated": True,
        "si_horizon": 2,
        "si_policy_prune_threshold": 0.1,
        "si_state_prune_threshold": 0.1,
        "si_prune_penalty": 64,
        "ii_depth": 3,
        "ii_threshold": 0.1,
    }


def keyword_model():
    return random_model(4, [3, 2], [3, 2], [2, 1], A_factor_list=[[0, 1], [1]], B_factor_list=[[0, 1], [1]])


@pytest.mark.parametrize("keyword", list(non_default_values(keyword_model())))
def test_supports_and_the_constructor_agree_on_every_legacy_keyword(keyword):
    """Every keyword of the legacy signature, at a value other than its default: supports() says yes and the
    constructor builds the agent, or both refuse it naming the keyword (a TypeError, even for an array)."""
    from pymdpbench.engines.base import LEGACY_KEYWORDS

    assert keyword in LEGACY_KEYWORDS
    model = keyword_model()
    value = non_default_values(model)[keyword]
    kwargs = {**model.agent_kwargs(), keyword: value}
    options = {
        "num_states": model.num_states,
        "num_obs": model.num_obs,
        "num_controls": model.num_controls,
        "policy_len": 1,
        keyword: value,
    }
    ok, reason = Agent.supports(options)
    if ok:
        agent = Agent(**kwargs)
        agent.infer_states([0, 1])
        agent.infer_policies()
        agent.sample_action()
    else:
        assert keyword in reason, reason
        with pytest.raises(TypeError, match=keyword):
            Agent(**kwargs)
    assert ok == (keyword not in ("H", "inference_algo", "sophisticated"))


def test_refusals_name_the_feature_for_array_values():
    model = random_model(0, [3], [2], [2])
    with pytest.raises(TypeError, match=r"H=an array of shape \(3,\) \(inductive inference"):
        Agent(**model.agent_kwargs(), H=np.ones(3) / 3)
    ok, reason = Agent.supports({"num_states": [3], "inference_algo": "MMP", "sophisticated": True})
    assert not ok and "MMP" in reason and "sophisticated inference" in reason
    with pytest.raises(TypeError, match="unexpected keyword arguments: bogus"):
        Agent(**model.agent_kwargs(), bogus=1)
    # at their defaults the refused keywords are accepted, as legacy takes them
    Agent(**model.agent_kwargs(), H=None, inference_algo="VANILLA", sophisticated=False, si_horizon=3)
    with pytest.raises(ValueError, match="num_controls"):
        Agent(**model.agent_kwargs(), num_controls=[3])
    with pytest.raises(ValueError, match="control_fac_idx"):
        Agent(**random_model(0, [3, 2], [2], [2, 1]).agent_kwargs(), control_fac_idx=[1])


def legacy_and_sparse(model, **options):
    """pymdp's legacy agent and the sparse one, each on its own copy of the model (an in-place edit of one
    must not reach the other)."""
    Standard = get_engine("standard")
    return (
        Standard(**copy.deepcopy(to_dense(model).agent_kwargs()), **copy.deepcopy(options)),
        Agent(**copy.deepcopy(model.agent_kwargs()), **copy.deepcopy(options)),
    )


def run_both(model, observations, seed, edits=None, learning=None, **options):
    """Step pymdp's legacy agent and the sparse one side by side; ``edits[t](agent)`` runs before step t
    on each. Asserts qs, q_pi, G within 1e-10, the same actions and numpy's RNG left in the same state."""
    agents = legacy_and_sparse(model, **options)
    records, states = [], []
    for agent in agents:
        np.random.seed(seed)
        record = []
        for t, obs in enumerate(observations):
            if edits and t in edits:
                edits[t](agent)
            qs_prev = obj_array([np.array(q, copy=True) for q in agent.qs])
            qs = agent.infer_states([int(o) for o in obs])
            if learning and t > 0:
                if agent.pA is not None:
                    agent.update_A([int(o) for o in obs])
                if agent.pB is not None:
                    agent.update_B(qs_prev)
            q_pi, G = agent.infer_policies()
            action = agent.sample_action()
            record.append((np.concatenate([np.ravel(q) for q in qs]), np.array(q_pi), np.array(G), np.array(action)))
        records.append(record)
        states.append(np.random.get_state()[1].copy())
    for (qs_a, q_pi_a, G_a, act_a), (qs_b, q_pi_b, G_b, act_b) in zip(*records):
        np.testing.assert_allclose(qs_b, qs_a, rtol=0, atol=TOL)
        np.testing.assert_allclose(q_pi_b, q_pi_a, rtol=0, atol=TOL)
        np.testing.assert_allclose(G_b, G_a, rtol=TOL, atol=TOL)
        np.testing.assert_array_equal(act_b, act_a)
    np.testing.assert_array_equal(states[0], states[1])
    return agents


@pytest.mark.parametrize("case", range(8))
def test_matches_legacy_with_factor_interactions_subsets_and_all_modes(case):
    """1-3 factors, A_factor_list (unsorted too), B_factor_list interactions, learning of a subset of
    modalities and factors, all four selection modes, with parameter info gain."""
    num_states = [[5], [4, 3], [3, 2, 3], [4, 3], [3, 4], [2, 3, 2], [4, 2], [3, 3]][case]
    F = len(num_states)
    num_controls = [[3], [2, 2], [2, 1, 2], [3, 1], [2, 2], [1, 2, 2], [2, 3], [2, 2]][case]
    A_factor_list = [
        None,
        [[1, 0], [1]],
        [[0, 2], [1], [2, 1, 0]],
        None,
        [[0], [1, 0]],
        [[2], [0, 1]],
        [[0, 1]],
        [[1], [0]],
    ][case]
    B_factor_list = [
        None,
        [[0, 1], [1]],
        [[0], [0, 1], [2, 1]],
        [[0, 1], [1]],
        [[1, 0], [1]],
        [[0], [1, 2], [2]],
        [[0], [0, 1]],
        [[1, 0], [0, 1]],
    ][case]
    num_obs = [3, 4, 2][: len(A_factor_list) if A_factor_list else 2]
    model = random_model(
        100 + case,
        num_states,
        num_obs,
        num_controls,
        A_factor_list=A_factor_list,
        B_factor_list=B_factor_list,
        density=0.7,
        dirichlet=True,
    )
    sampling_mode, action_selection = MODES[case % 4]
    policy_len = 2 if np.prod(num_controls) <= 4 else 1
    observations = gate.observation_sequence(case, num_obs, 6)
    run_both(
        model,
        observations,
        case,
        learning=True,
        policy_len=policy_len,
        sampling_mode=sampling_mode,
        action_selection=action_selection,
        use_param_info_gain=True,
        modalities_to_learn=[0] if case % 2 else "all",
        factors_to_learn=[F - 1] if case % 3 else "all",
        lr_pA=0.7,
        lr_pB=1.3,
    )


def test_exact_ties_draw_like_legacy():
    """Two identical actions: every deterministic choice is a tie that legacy breaks with np.random.choice."""
    model = random_model(9, [6], [4], [3])
    model.B[0][:, :, 2] = model.B[0][:, :, 0]
    for sampling_mode in ("marginal", "full"):
        run_both(model, gate.observation_sequence(9, [4], 8), 9, policy_len=2, sampling_mode=sampling_mode)


def test_custom_policies_and_control_fac_idx_match_legacy():
    model = random_model(12, [4, 3], [3, 2], [3, 2], B_factor_list=[[0], [0, 1]])
    policies = np.array([[[0, 1], [2, 0]], [[1, 1], [1, 1]], [[2, 0], [0, 1]], [[0, 1], [0, 0]]])
    run_both(
        model,
        gate.observation_sequence(12, [3, 2], 6),
        12,
        policies=policies,
        control_fac_idx=[0, 1],
        E=np.array([0.1, 0.2, 0.3, 0.4]),
        sampling_mode="full",
        action_selection="stochastic",
    )


def test_belief_history_update_D_and_reset_match_legacy():
    model = random_model(13, [5, 3], [4], [2, 2], dirichlet=True)
    pD = obj_array([np.linspace(1.0, 2.0, n) for n in model.num_states])
    legacy, sparse = legacy_and_sparse(
        model,
        pD=pD,
        save_belief_hist=True,
        inference_horizon=3,
        lr_pD=0.5,
        inference_algo="VANILLA",
        factors_to_learn=[1],
    )
    for agent in (legacy, sparse):
        np.random.seed(0)
        for obs in gate.observation_sequence(13, [4], 5):
            agent.infer_states([int(o) for o in obs])
            agent.infer_policies()
            agent.sample_action()
        agent.update_D()
        agent.reset()
    assert sparse.curr_timestep == legacy.curr_timestep == 0
    assert len(sparse.qs_hist) == len(legacy.qs_hist) == 5
    assert len(sparse.q_pi_hist) == len(legacy.q_pi_hist)
    assert len(sparse.prev_actions) == len(legacy.prev_actions) == 5
    for a, b in zip(sparse.q_pi_hist, legacy.q_pi_hist):
        np.testing.assert_allclose(a, b, atol=TOL)
    for name in ("pD", "D", "qs"):
        for a, b in zip(getattr(sparse, name), getattr(legacy, name)):
            np.testing.assert_allclose(a, b, atol=TOL)
    for a, b in zip(sparse.A, legacy.A):
        np.testing.assert_allclose(a.toarray(), b, atol=TOL)
    # after reset the next step uses the last action's prior, as legacy
    obs = [1]
    np.testing.assert_allclose(
        np.concatenate(sparse.infer_states(obs)), np.concatenate(legacy.infer_states(obs)), atol=TOL
    )


def test_distributional_observations_match_legacy():
    model = random_model(14, [4, 3], [3, 2], [2, 2])
    legacy, sparse = legacy_and_sparse(model)
    obs = obj_array([np.array([0.2, 0.5, 0.3]), np.array([0.9, 0.1])])
    for a, b in zip(sparse.infer_states(obs, distr_obs=True), legacy.infer_states(obs, distr_obs=True)):
        np.testing.assert_allclose(a, b, atol=TOL)


# --- changes after construction take effect at the next call, as in legacy -------------------


def _renormalised(matrix, rng):
    data = matrix.data * rng.uniform(0.5, 2.0, size=matrix.nnz)
    import pymdpbench.engines.sparse as engine

    return engine.column_normalise(engine._with_data(matrix, data)).data


def _edit_A_data_in_place(agent):
    """Scale A's stored values in place (same pattern), renormalised; legacy gets the same dense values."""
    rng = np.random.default_rng(5)
    if isinstance(agent, Agent):
        matrix = agent.A[0].matrix
        matrix.data[:] = _renormalised(matrix, rng)
    else:
        shape = agent.A[0].shape
        matrix = sp.csc_array(agent.A[0].reshape(shape[0], -1))
        dense = sp.csc_array((_renormalised(matrix, rng), matrix.indices, matrix.indptr), shape=matrix.shape)
        agent.A[0][...] = dense.toarray().reshape(shape)


def _edit_pA_data_in_place(agent):
    if isinstance(agent, Agent):
        agent.pA[0].matrix.data[:] *= 3.0
    else:
        agent.pA[0] *= 3.0


def _new_A(seed):
    return random_model(seed, [6, 2], [5, 3], [3, 2], density=0.6).A


MUTATIONS = {
    "C in place": lambda agent: agent.C[0].__setitem__(1, 3.0),
    "C assigned": lambda agent: setattr(agent, "C", obj_array([np.arange(5.0), -np.arange(3.0)])),
    "D assigned": lambda agent: setattr(agent, "D", obj_array([np.eye(1, 6, 2)[0], np.array([0.3, 0.7])])),
    "D in place": lambda agent: agent.D[0].__setitem__(slice(None), np.linspace(1, 2, 6) / np.linspace(1, 2, 6).sum()),
    "E assigned": lambda agent: setattr(agent, "E", np.linspace(1, 2, 36) / np.linspace(1, 2, 36).sum()),
    "gamma": lambda agent: setattr(agent, "gamma", 2.5),
    "alpha": lambda agent: setattr(agent, "alpha", 0.5),
    "use_utility": lambda agent: setattr(agent, "use_utility", False),
    "use_states_info_gain": lambda agent: setattr(agent, "use_states_info_gain", False),
    "use_param_info_gain": lambda agent: setattr(agent, "use_param_info_gain", True),
    "action_selection": lambda agent: setattr(agent, "action_selection", "stochastic"),
    "sampling_mode": lambda agent: setattr(agent, "sampling_mode", "full"),
    "lr_pA": lambda agent: setattr(agent, "lr_pA", 5.0),
    "lr_pB": lambda agent: setattr(agent, "lr_pB", 0.1),
    "modalities_to_learn": lambda agent: setattr(agent, "modalities_to_learn", [1]),
    "factors_to_learn": lambda agent: setattr(agent, "factors_to_learn", "all"),
    "inference_params": lambda agent: setattr(
        agent, "inference_params", {"num_iter": 2, "dF": 1.0, "dF_tol": 0.001, "compute_vfe": False}
    ),
    "policies": lambda agent: (
        setattr(agent, "policies", agent.policies[::3].copy()) or setattr(agent, "E", np.ones(12) / 12)
    ),
    "A assigned dense": lambda agent: setattr(agent, "A", _new_A(1)),
    "A entry assigned dense": lambda agent: agent.A.__setitem__(1, _new_A(2)[1]),
    "A assigned sparse": lambda agent: setattr(
        agent,
        "A",
        obj_array([SparseLikelihood(sp.csc_array(a.reshape(a.shape[0], -1)), a.shape) for a in _new_A(3)])
        if isinstance(agent, Agent)
        else _new_A(3),
    ),
    "A data in place": _edit_A_data_in_place,
    "B assigned dense": lambda agent: setattr(
        agent,
        "B",
        obj_array(  # pB's support: learning keeps it
            [normalise(np.asarray(b.toarray() if hasattr(b, "toarray") else b) ** 2) for b in agent.pB]
        ),
    ),
    "B entry assigned dense": lambda agent: agent.B.__setitem__(1, np.stack([np.eye(2)[::-1]] * 2, axis=-1)),
    "pA data in place": _edit_pA_data_in_place,
    "pA scaled in place (legacy idiom)": lambda agent: agent.pA.__setitem__(1, agent.pA[1].__imul__(0.5)),
    "A column assigned (legacy indexing)": lambda agent: agent.A[0].__setitem__(
        (slice(None), 4, 1), np.array([0.0, 0.5, 0.0, 0.25, 0.25])
    ),
    "B column assigned (legacy indexing)": lambda agent: agent.B[0].__setitem__((slice(None), 2, 1, 0), np.eye(6)[5]),
    "pB assigned": lambda agent: setattr(
        agent, "pB", obj_array([(b.toarray() if hasattr(b, "toarray") else b) * 2.0 for b in agent.pB])
    ),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_a_change_after_construction_takes_effect_as_in_legacy(name):
    """Each idiom applied to both agents between steps; the sparse agent must follow legacy exactly."""
    model = random_model(21, [6, 2], [5, 3], [3, 2], B_factor_list=[[0, 1], [1]], density=0.6, dirichlet=True)
    run_both(
        model,
        gate.observation_sequence(21, [5, 3], 5),
        21,
        edits={2: MUTATIONS[name]},
        learning=True,
        policy_len=2,
        use_param_info_gain=name != "use_param_info_gain",
    )


def test_features_switched_on_after_construction_are_refused_by_name():
    agent = Agent(**random_model(0, [3], [2], [2]).agent_kwargs())
    agent.inference_algo = "MMP"
    with pytest.raises(ValueError, match="inference_algo.*marginal message passing"):
        agent.infer_states([0])
    agent.inference_algo = "VANILLA"
    agent.sophisticated = True
    with pytest.raises(ValueError, match="sophisticated"):
        agent.infer_policies()


def test_warmup_compiles_and_leaves_the_rng_alone():
    np.random.seed(3)
    state = np.random.get_state()[1].copy()
    assert Agent.warmup() >= 0
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_assigned_arrays_are_held_sparse_and_wrong_shapes_refused():
    model = random_model(22, [6, 2], [5, 3], [3, 2])
    agent = Agent(**model.agent_kwargs())
    agent.A = _new_A(1)
    assert all(isinstance(a, SparseLikelihood) for a in agent.A)
    agent.B[0] = model.B[0]
    agent.infer_states([0, 0])
    assert all(isinstance(b, SparseTransitions) for b in agent.B)
    with pytest.raises(ValueError, match=r"A\[0\] has shape \(5, 3, 2\)"):
        agent.A = obj_array([np.ones((5, 3, 2)) / 5, model.A[1]])
    with pytest.raises(ValueError, match="modalities"):
        agent.A = model.A[:1]


def test_sparse_arrays_read_like_legacy_arrays_and_refuse_to_densify_large_ones():
    model = random_model(23, [4, 3], [5], [2, 2])
    agent = Agent(**model.agent_kwargs())
    np.testing.assert_array_equal(np.asarray(agent.A[0]), model.A[0])
    np.testing.assert_array_equal(agent.B[1][:, :, 1], model.B[1][:, :, 1])
    np.testing.assert_allclose(agent.A[0] * 2.0, model.A[0] * 2.0)
    big = sparse_model(0, num_states=9000, num_obs=9000, num_controls=2)
    with pytest.raises(ValueError, match="A has 81,000,000 entries in its legacy dense form"):
        big.A[0][0, 0] = 1.0


def test_in_place_edits_refresh_the_cached_info_gain_term():
    """h = sum_o A ln(A + e^-16) follows A's stored values: G equals a fresh agent's after each kind of change."""
    model = sparse_model(6, num_states=50, num_obs=20, num_controls=3)
    agent = Agent(**model.agent_kwargs())
    agent.infer_states([1])
    agent.infer_policies()
    rng = np.random.default_rng(0)
    matrix = agent.A[0].matrix
    matrix.data[:] = _renormalised(matrix, rng)  # in place, same arrays
    _, G = agent.infer_policies()
    fresh = Agent(**{**model.agent_kwargs(), "A": [matrix.copy()]})
    fresh.qs = agent.qs
    np.testing.assert_allclose(G, fresh.infer_policies()[1], rtol=0, atol=1e-12)
    folded = sp.csc_array((np.ones(50), np.arange(50) % 20, np.arange(51)), shape=(20, 50))
    agent.A = obj_array([SparseLikelihood(folded, (20, 50))])  # own sparse form
    _, G = agent.infer_policies()
    fresh = Agent(**{**model.agent_kwargs(), "A": [folded.copy()]})
    fresh.qs = agent.qs
    np.testing.assert_allclose(G, fresh.infer_policies()[1], rtol=0, atol=1e-12)
