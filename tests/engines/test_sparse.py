"""The sparse engine against pymdp's legacy Agent, dense input against sparse input, and its memory."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from pymdpbench import gate
from pymdpbench.engines import get_engine
from pymdpbench.engines.sparse import Agent, SparseLikelihood, SparseTransitions, to_dense
from pymdpbench.models import random_model, sparse_model

TOL = gate.TOLERANCE["float64"]
MODES = [("marginal", "deterministic"), ("marginal", "stochastic"), ("full", "deterministic"), ("full", "stochastic")]


def reference_and_sparse(model, observations, action_seed, learning=None, **options):
    reference = gate.run_trajectory(get_engine("standard")(**model.agent_kwargs(), **options), observations,
                                    action_seed, learning=learning)
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
    num_controls = max(n for n in range(1, int(rng.integers(1, 9)) + 1)
                       if n == 1 or n ** policy_len * policy_len * num_states <= 3000)
    density = float(rng.uniform(0.2, 1.0))
    return num_states, num_obs, num_controls, policy_len, density


@pytest.mark.parametrize("case", range(24))
def test_matches_legacy_on_random_one_factor_models(case):
    num_states, num_obs, num_controls, policy_len, density = one_factor_case(case)
    learning = (None, "pre", "post")[case % 3]
    sampling_mode, action_selection = MODES[case % 4]
    model = random_model(case, [num_states], num_obs, [num_controls], density=density,
                         dirichlet=learning is not None, E_policy_len=policy_len if case % 5 == 0 else None)
    observations = gate.observation_sequence(case, num_obs, 6)
    reference, other = reference_and_sparse(
        model, observations, action_seed=case, learning=learning, policy_len=policy_len,
        sampling_mode=sampling_mode, action_selection=action_selection, use_param_info_gain=case % 4 == 1)
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
    model = random_model(case, num_states, num_obs, num_controls, A_factor_list=A_factor_list,
                         density=0.5 + 0.1 * case, dirichlet=learning is not None)
    sampling_mode, action_selection = MODES[case % 4]
    policy_len = 2 if case % 2 and np.prod(num_controls) <= 4 else 1
    reference, other = reference_and_sparse(
        model, gate.observation_sequence(case, num_obs, 5), action_seed=case, learning=learning,
        policy_len=policy_len, sampling_mode=sampling_mode, action_selection=action_selection,
        use_param_info_gain=learning is not None)
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
    reference = gate.run_trajectory(get_engine("standard")(**to_dense(model).agent_kwargs(), policy_len=2),
                                    observations, 3)
    other = gate.run_trajectory(Agent(**model.agent_kwargs(), policy_len=2), observations, 3)
    dev = gate.deviation(reference, other)
    assert gate.passes(dev, TOL), dev


def test_sparse_built_and_dense_built_inputs_give_the_same_trajectory():
    model = sparse_model(5, num_states=40, num_obs=16, num_controls=3)
    dense = to_dense(model)
    as_lists = {"A": [model.A[0].matrix.tocsr()], "B": [[sp.coo_array(b) for b in model.B[0].matrices]],
                "C": model.C, "D": model.D}
    observations = gate.observation_sequence(5, model.num_obs, 8)
    runs = [gate.run_trajectory(Agent(**kwargs, policy_len=2, action_selection="stochastic"), observations, 5)
            for kwargs in (model.agent_kwargs(), dense.agent_kwargs(), as_lists)]
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
    assert step_peak - baseline <= arrays, (step_peak - baseline, arrays)  # peak <= 2x the arrays' bytes
    assert np.isclose(q_pi.sum(), 1.0) and np.all(np.isfinite(G))


def test_supports_and_constructor_name_what_is_missing():
    ok, reason = Agent.supports({"num_states": [4, 3], "num_obs": [2], "num_controls": [2, 1], "policy_len": 2})
    assert ok and reason == ""
    ok, reason = Agent.supports({"num_states": [4, 3], "B_factor_list": [[0, 1], [1]]})
    assert not ok and "B_factor_list" in reason
    ok, reason = Agent.supports({"num_states": [4], "inference_horizon": 2})
    assert not ok and "inference_horizon" in reason
    model = random_model(0, [3, 2], [2], [2, 1], B_factor_list=[[0, 1], [1]])
    with pytest.raises(TypeError, match="B_factor_list"):
        Agent(**model.agent_kwargs())
    with pytest.raises(TypeError, match="sophisticated"):
        Agent(**random_model(0, [3], [2], [2]).agent_kwargs(), sophisticated=True)


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
