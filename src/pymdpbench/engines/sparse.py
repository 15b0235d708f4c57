"""pymdp's legacy Agent on sparse matrices: A and B are never densified, memory grows with their non-zeros.

Layout (also what the constructor accepts, besides pymdp's dense object arrays):

* ``A[m]``, legacy shape ``(No, Ns_f for f in A_factor_list[m])``, is one CSC matrix of shape
  ``(No, prod Ns)`` whose columns are legacy's ``A[m].reshape(No, -1)`` (C order, the first factor
  most significant): a :class:`SparseLikelihood`, or any scipy.sparse matrix of that shape. CSC,
  because planning walks A column by column (reading the predicted states in order and scattering
  into the few outcomes, 2-3x faster than gathering row by row); the one row an observation
  selects is found by a scan of the row indices, O(nnz) and cheap next to planning.
* ``B[f]``, legacy shape ``(Ns, Ns, Nu)``, is one CSR matrix ``B[f][:, :, u]`` of shape ``(Ns, Ns)``
  per action: a :class:`SparseTransitions`, or a list of ``Nu`` scipy.sparse matrices.
* ``pA`` and ``pB`` take the same forms. Learning adds counts only where ``A > 0`` (``B > 0``), so
  the sparsity pattern is fixed at construction and learning keeps it.

The numerics are those of ``pymdp-legacy-spec.md`` in float64: the empirical prior from B and the
previous action; a one-shot softmax posterior for one factor and legacy's Jacobi fixed-point
iteration with its dF stop rule for several (on the dense joint grid of the factors, whose size is
A's column count); utility with log-softmax C; the state information gain with the exp(-16)
truncation in its vectorised form ``IG = w.h - o.ln(o + 1e-16)``; the Dirichlet parameter
information gain; and ``update_A``/``update_B``. Policies are evaluated level by level, so a
prefix shared by several policies is rolled out and scored once. Action selection is inherited
from :class:`~pymdpbench.engines.base.LegacyAgent` (numpy's global RNG, as legacy).

Not supported, declared by :meth:`Agent.supports`: ``B_factor_list`` interactions (a factor whose
transitions depend on other factors) and the legacy keywords listed in ``LEGACY_DEFAULTS``
at non-default values.
"""

import dataclasses

import numba
import numpy as np
import scipy.sparse as sp

from pymdpbench.engines.base import (EPS_VAL, LEGACY_DEFAULTS, LegacyAgent, as_obj_array, check_distribution,
                                     check_options, construct_policies, obj_array, softmax)

#: ``spm_MDP_G`` keeps only states with q(s) > exp(-16) and logs A as ln(A + exp(-16)) (``legacy/maths.py:547,560``).
MDP_G_EPS = np.exp(-16)
#: ln(0 + 1e-16): the log-likelihood of an observation that a state never emits.
LOG_EPS = np.log(EPS_VAL)
#: Legacy's default ``inference_params`` (``legacy/agent.py:926-927``); the constructor ignores the argument, as legacy.
FPI_PARAMS = {"num_iter": 10, "dF": 1.0, "dF_tol": 0.001, "compute_vfe": True}


def _canonical(matrix, shape, name, layout):
    """``matrix`` as a float64 ``layout`` (sp.csr_array or sp.csc_array) with sorted, unique indices, no stored zeros.

    A scipy.sparse input already in that form is shared, not copied (the engine never writes into it).
    """
    if sp.issparse(matrix):
        out = layout(matrix, dtype=np.float64)
        if not out.has_canonical_format or np.any(out.data == 0):
            out = out.copy()
            out.sum_duplicates()
            out.eliminate_zeros()
    else:
        out = layout(np.asarray(matrix, dtype=np.float64))
    if out.shape != tuple(shape):
        raise ValueError(f"{name} has shape {out.shape}; expected {tuple(shape)}")
    if out.indices.dtype != np.int32 and max(*out.shape, out.nnz) < np.iinfo(np.int32).max:
        # 4-byte indices: less memory to stream per step, and one compiled kernel signature
        out = layout((out.data, out.indices.astype(np.int32), out.indptr.astype(np.int32)), shape=out.shape)
    return out


def _nbytes(matrix):
    return int(matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes)


class SparseLikelihood:
    """A[m] of legacy shape ``(No, *Ns)`` held as one CSC matrix of shape ``(No, prod Ns)``."""

    def __init__(self, matrix, shape=None, name="A"):
        shape = tuple(shape) if shape is not None else tuple(matrix.shape)
        self.matrix = _canonical(matrix, (shape[0], int(np.prod(shape[1:]))), name, sp.csc_array)
        self.shape = shape

    ndim = property(lambda self: len(self.shape))
    nbytes = property(lambda self: _nbytes(self.matrix), doc="Bytes actually stored (data, indices, indptr).")

    def toarray(self):
        """The dense legacy array (small models only)."""
        return self.matrix.toarray().reshape(self.shape)


class SparseTransitions:
    """B[f] of legacy shape ``(Ns, Ns, Nu)`` held as one CSR matrix ``B[f][:, :, u]`` per action u."""

    def __init__(self, matrices):
        first = matrices[0]
        self.matrices = tuple(_canonical(b, first.shape, f"B[..., {u}]", sp.csr_array) for u, b in enumerate(matrices))
        self.shape = (*self.matrices[0].shape, len(self.matrices))

    ndim = property(lambda self: 3)
    nbytes = property(lambda self: sum(_nbytes(b) for b in self.matrices), doc="Bytes actually stored.")

    def toarray(self):
        """The dense legacy array (small models only)."""
        return np.stack([b.toarray() for b in self.matrices], axis=-1)


def as_likelihood(array, shape_of_states, name):
    """A :class:`SparseLikelihood` from a dense legacy array, a scipy.sparse matrix or a SparseLikelihood."""
    if isinstance(array, SparseLikelihood) or not sp.issparse(array):
        if not isinstance(array, SparseLikelihood):
            array = np.asarray(array, dtype=np.float64)
        if tuple(array.shape[1:]) != tuple(shape_of_states):
            raise ValueError(f"{name} has shape {tuple(array.shape)}; its factors need (No, *{tuple(shape_of_states)})")
        array = array.matrix if isinstance(array, SparseLikelihood) else array.reshape(array.shape[0], -1)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (No, prod Ns) when sparse, got {array.ndim}-D")
    return SparseLikelihood(array, (array.shape[0], *shape_of_states), name)


def as_transitions(array, name):
    """A :class:`SparseTransitions` from a dense (Ns, Ns, Nu) array, a list of per-action matrices or itself."""
    if isinstance(array, SparseTransitions):
        return array
    if isinstance(array, (list, tuple)):
        return SparseTransitions(list(array))
    if sp.issparse(array):
        raise ValueError(f"{name} is one sparse matrix; give one (Ns, Ns) matrix per action (a list)")
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 3:
        raise ValueError(f"{name} must have shape (Ns, Ns, Nu), got {array.shape}; "
                         "B_factor_list interactions are not supported by the sparse engine")
    return SparseTransitions([array[:, :, u] for u in range(array.shape[-1])])


def _items(arrays, single_types, name):
    """The per-modality / per-factor entries of A, B, pA or pB (object array, list, or one entry)."""
    if arrays is None:
        return None
    if isinstance(arrays, single_types) or sp.issparse(arrays):
        return [arrays]
    if isinstance(arrays, np.ndarray):
        return list(as_obj_array(arrays, name))
    if isinstance(arrays, (list, tuple)):
        return list(arrays)
    raise TypeError(f"{name} must be an object array or a list, got {type(arrays).__name__}")


def entry_rows(matrix):
    """The row of every stored entry of a CSR or CSC matrix."""
    if matrix.format == "csc":
        return matrix.indices
    return np.repeat(np.arange(matrix.shape[0], dtype=matrix.indices.dtype), np.diff(matrix.indptr))


def entry_columns(matrix):
    """The column of every stored entry of a CSR or CSC matrix."""
    if matrix.format == "csr":
        return matrix.indices
    return np.repeat(np.arange(matrix.shape[1], dtype=matrix.indices.dtype), np.diff(matrix.indptr))


def column_sums(matrix, weights=None):
    """Per column, the sum of ``weights`` (default: the stored values) over its stored entries.

    CSC sums each column's contiguous run (no per-entry index array, which bincount would widen to int64).
    """
    weights = matrix.data if weights is None else weights
    if matrix.format != "csc":
        return np.bincount(entry_columns(matrix), weights=weights, minlength=matrix.shape[1])
    sums = np.zeros(matrix.shape[1])
    starts = matrix.indptr[:-1]
    filled = starts < matrix.indptr[1:]
    if np.any(filled):
        sums[filled] = np.add.reduceat(weights, starts[filled])
    return sums


def row_entries(matrix, o):
    """Positions in ``matrix.data`` of the stored entries of row ``o`` of a CSC matrix, and their columns."""
    positions = np.flatnonzero(matrix.indices == o)
    return positions, np.searchsorted(matrix.indptr, positions, side="right") - 1


def check_columns(name, matrix, column_shape):
    """Refuse a sparse matrix whose columns are not distributions, without densifying it.

    Same test as ``check_distribution`` (``np.isclose`` to 1), on the stored entries only. Columns
    are named by their legacy index (``column_shape`` unravels them).
    """
    data = matrix.data
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{name} holds NaN or inf")
    if np.any(data < 0):
        j = int(np.argmax(data < 0))
        column = np.unravel_index(int(entry_columns(matrix)[j]), column_shape)
        raise ValueError(f"{name} has a negative probability at index "
                         f"{(int(entry_rows(matrix)[j]), *(int(i) for i in column))}")
    sums = column_sums(matrix)
    bad = ~np.isclose(sums, 1.0)
    if np.any(bad):
        column = int(np.argmax(bad))
        index = tuple(int(i) for i in np.unravel_index(column, column_shape))
        raise ValueError(f"{name} is not normalised: column {index} sums to {sums[column]:.6g}, not 1")


def _with_data(matrix, data):
    """A matrix of the same format and pattern (index arrays shared) holding ``data``."""
    return type(matrix)((data, matrix.indices, matrix.indptr), shape=matrix.shape)


def column_normalise(matrix):
    """``norm_dist`` of a sparse matrix (each column divided by its sum, no epsilon), same pattern."""
    return _with_data(matrix, matrix.data / column_sums(matrix)[entry_columns(matrix)])


def neg_entropy_per_column(matrix):
    """h(s) = sum_o A[o, s] ln(A[o, s] + exp(-16)) over the stored entries; a zero adds 0 ln(exp(-16)) = 0."""
    terms = matrix.data + MDP_G_EPS
    np.log(terms, out=terms)
    terms *= matrix.data
    return column_sums(matrix, terms)


def wnorm_masked(matrix):
    """``spm_wnorm(P) * (P > 0)`` on P's stored entries: 1/sum_o(P + 1e-16) - 1/(P + 1e-16) (``legacy/maths.py:317``).

    The column sum over the dense column adds 1e-16 for each of its No rows; zeros are masked out.
    """
    data = matrix.data + EPS_VAL
    columns = entry_columns(matrix)
    sums = column_sums(matrix, data)
    sums += (matrix.shape[0] - np.bincount(columns, minlength=matrix.shape[1])) * EPS_VAL
    return _with_data(matrix, 1.0 / sums[columns] - 1.0 / data)


@numba.njit(cache=True)
def _outcome_terms(indptr, indices, data, X, h, ln_c, out, obar):
    """Utility and the first part of the state info gain of n predicted state distributions, one pass over A.

    A is CSC (No, J): ``indptr`` (J+1,), ``indices`` (nnz,) rows, ``data`` (nnz,). ``X`` (J, n): the n
    distributions x, one per column. ``h`` (J,): sum_o A ln(A + exp(-16)). ``ln_c`` (No,): ln(softmax(C) + 1e-16).
    Writes ``out[0, k] = (A x_k) . ln_c = x_k . (A^T ln_c)`` and ``out[1, k] = w_k . h`` with
    ``w_k = x_k [x_k > exp(-16)]`` (legacy's truncation), and ``obar[:, k] = A w_k`` (No, n); the caller
    subtracts ``obar . ln(obar + 1e-16)``, vectorised (numba's log is ~5x slower than numpy's here).
    """
    J, n = X.shape
    threshold = np.exp(-16.0)
    w = np.empty(n)
    out[:] = 0.0
    obar[:] = 0.0
    for s in range(J):
        c = 0.0
        for j in range(indptr[s], indptr[s + 1]):
            c += data[j] * ln_c[indices[j]]
        for k in range(n):
            x = X[s, k]
            w[k] = x if x > threshold else 0.0
            out[0, k] += x * c
            out[1, k] += w[k] * h[s]
        for j in range(indptr[s], indptr[s + 1]):
            o = indices[j]
            a = data[j]
            for k in range(n):
                obar[o, k] += w[k] * a


@numba.njit(cache=True)
def _transition(indptr, indices, data, X, u, out):
    """Children of every parent under one action: ``out[:, p * U + u] = B_u @ X[:, p]``, U = out.shape[1] // n.

    B_u is CSR (Ns, Ns): ``indptr`` (Ns+1,), ``indices`` (nnz,), ``data`` (nnz,). ``X`` (Ns, n): parent
    state distributions, one per column. ``out`` (Ns, n * U): children, node p * U + u being parent p
    followed by joint action u (legacy's policy order, the first step most significant).
    """
    n = X.shape[1]
    U = out.shape[1] // n
    for r in range(indptr.shape[0] - 1):
        for p in range(n):
            total = 0.0
            for j in range(indptr[r], indptr[r + 1]):
                total += data[j] * X[indices[j], p]
            out[r, p * U + u] = total


def _contract(ll, qs, keep):
    """sum over every axis of ``ll`` but ``keep`` of ll * prod_g qs[g]: legacy ``spm_dot(ll, qs, [keep])``."""
    operands = [ll, list(range(ll.ndim))]
    for i, q in enumerate(qs):
        if i != keep:
            operands += [q, [i]]
    return np.einsum(*operands, [keep])


def _free_energy(qs, log_prior, joint_ll=None):
    """``legacy/maths.py:396-410``: sum_f q.ln(q + 1e-16) - q.ln p, minus the accuracy if ``joint_ll`` is given."""
    vfe = 0.0
    for q, lp in zip(qs, log_prior):
        vfe += q.dot(np.log(q + 1e-16)) + -q.dot(lp)
    if joint_ll is not None:
        operands = [joint_ll, list(range(joint_ll.ndim))]
        for f, q in enumerate(qs):
            operands += [q, [f]]
        vfe -= np.einsum(*operands)
    return vfe


def _joint(columns):
    """Per column k, the outer product of the factors' columns, flattened in C order: (prod Ns, n)."""
    joint = columns[0]
    for x in columns[1:]:
        joint = (joint[:, None, :] * x[None, :, :]).reshape(-1, x.shape[1])
    return joint


def _default_b_factor_list(num_factors):
    return [[f] for f in range(num_factors)]


class Agent(LegacyAgent):
    """pymdp.legacy's Agent on sparse matrices (see the module docstring for the accepted layouts).

    ``self.A[m]`` is a :class:`SparseLikelihood`, ``self.B[f]`` a :class:`SparseTransitions`
    (``toarray()`` gives the legacy array). The constructor mirrors ``LegacyAgent``'s but
    validates and stores the matrices sparse.
    """

    def __init__(self, A, B, C=None, D=None, E=None, pA=None, pB=None, policy_len=1,
                 gamma=16.0, alpha=16.0, use_utility=True, use_states_info_gain=True,
                 use_param_info_gain=False, action_selection="deterministic", sampling_mode="marginal",
                 modalities_to_learn="all", factors_to_learn="all", lr_pA=1.0, lr_pB=1.0,
                 A_factor_list=None, B_factor_list=None, **other):
        check_options(self, other, action_selection, sampling_mode)

        B_items = _items(pB if pB is not None else B, SparseTransitions, "pB" if pB is not None else "B")
        if B_factor_list is not None and [list(f) for f in B_factor_list] != _default_b_factor_list(len(B_items)):
            raise TypeError(f"{type(self).__module__}.Agent does not support: B_factor_list={B_factor_list} "
                            "(transitions that depend on other factors)")
        transitions = [as_transitions(b, f"B[{f}]") for f, b in enumerate(B_items)]
        self.num_states = [b.shape[0] for b in transitions]
        self.num_controls = [b.shape[-1] for b in transitions]
        self.num_factors = len(transitions)

        A_items = _items(pA if pA is not None else A, SparseLikelihood, "pA" if pA is not None else "A")
        self.num_modalities = len(A_items)
        self.A_factor_list = A_factor_list or [list(range(self.num_factors))] * self.num_modalities
        self.B_factor_list = _default_b_factor_list(self.num_factors)
        likelihoods = [as_likelihood(a, [self.num_states[f] for f in self.A_factor_list[m]], f"A[{m}]")
                       for m, a in enumerate(A_items)]
        self.num_obs = [a.shape[0] for a in likelihoods]
        self.A_modality_list = [[m for m in range(self.num_modalities) if f in self.A_factor_list[m]]
                                for f in range(self.num_factors)]

        if pA is not None:
            self.pA = obj_array([SparseLikelihood(a.matrix.copy(), a.shape) for a in likelihoods])
            likelihoods = [SparseLikelihood(column_normalise(p.matrix), p.shape) for p in self.pA]
        else:
            self.pA = None
        if pB is not None:
            self.pB = obj_array([SparseTransitions([b.copy() for b in t.matrices]) for t in transitions])
            transitions = [SparseTransitions([column_normalise(b) for b in t.matrices]) for t in self.pB]
        else:
            self.pB = None
        for m, a in enumerate(likelihoods):
            check_columns(f"A[{m}]", a.matrix, a.shape[1:])
        for f, t in enumerate(transitions):
            if t.shape[0] != t.shape[1]:
                raise ValueError(f"B[{f}] has shape {t.shape}; expected (Ns, Ns, Nu)")
            for u, b in enumerate(t.matrices):
                check_columns(f"B[{f}][:, :, {u}]", b, b.shape[1:])
        self.A, self.B = obj_array(likelihoods), obj_array(transitions)

        self.C = as_obj_array(C, "C") if C is not None else obj_array([np.zeros(n) for n in self.num_obs])
        self.D = as_obj_array(D, "D") if D is not None else obj_array([np.ones(n) / n for n in self.num_states])
        for f, d in enumerate(self.D):
            check_distribution(f"D[{f}]", d)
        for m, c in enumerate(self.C):
            if c.ndim == 2 and c.shape[1] < policy_len:
                raise ValueError(f"C[{m}] has {c.shape[1]} columns; policy_len={policy_len} needs one per step")

        self._init_control(policy_len, E, gamma=gamma, alpha=alpha, use_utility=use_utility,
                           use_states_info_gain=use_states_info_gain, use_param_info_gain=use_param_info_gain,
                           action_selection=action_selection, sampling_mode=sampling_mode,
                           modalities_to_learn=modalities_to_learn, factors_to_learn=factors_to_learn,
                           lr_pA=lr_pA, lr_pB=lr_pB)
        self.joint_actions = construct_policies(self.num_controls, 1)[:, 0, :]
        self.inference_params = dict(FPI_PARAMS)
        self._ln_c_cache = None
        self._refresh_A()
        self._refresh_B()

    @classmethod
    def supports(cls, options):
        """Everything but B_factor_list interactions and the legacy keywords the base class refuses."""
        B_factor_list = options.get("B_factor_list")
        num_states = options.get("num_states")
        if B_factor_list is not None and num_states is not None:
            if [list(f) for f in B_factor_list] != _default_b_factor_list(len(num_states)):
                return False, "B_factor_list interactions (transitions that depend on other factors) are not supported"
        for key, default in LEGACY_DEFAULTS.items():
            if key != "num_controls" and key in options and options[key] != default:
                return False, f"{key}={options[key]!r} is not supported (only the legacy default {default!r})"
        return True, ""

    # -- caches derived from A and B --------------------------------------------------------

    def _refresh_A(self):
        """Per modality: h(s) for the info gain and, with pA, spm_wnorm(pA) on pA's pattern."""
        self._h = [neg_entropy_per_column(a.matrix) for a in self.A]
        self._wA = [wnorm_masked(p.matrix) for p in self.pA] if self.pA is not None else None

    def _refresh_B(self):
        self._wB = ([[wnorm_masked(b) for b in p.matrices] for p in self.pB] if self.pB is not None else None)

    # -- perception ------------------------------------------------------------------------

    def _log_likelihood(self, m, o):
        """ln(A_m[o, s] + 1e-16) for every joint state s, from the entries of row o (1-D, prod Ns)."""
        A = self.A[m].matrix
        ll = np.full(A.shape[1], LOG_EPS)
        positions, columns = row_entries(A, o)
        ll[columns] = np.log(A.data[positions] + EPS_VAL)
        return ll

    def infer_states(self, obs):
        """Legacy VANILLA ``infer_states``: empirical prior, then softmax (one factor) or Jacobi FPI."""
        obs = [int(o) for o in np.atleast_1d(obs)]
        if self.action is None:
            prior = list(self.D)
        else:
            prior = [self.B[f].matrices[int(self.action[f])] @ self.qs[f] for f in range(self.num_factors)]
        log_prior = [np.log(p + EPS_VAL) for p in prior]
        ll = [self._log_likelihood(m, o) for m, o in enumerate(obs)]
        if self.num_factors == 1:
            joint_ll = ll[0]
            for l in ll[1:]:
                joint_ll = joint_ll + l
            qs = [softmax(joint_ll + log_prior[0])]
        else:
            qs = self._fixed_point_iteration(ll, log_prior)
        self.qs = obj_array(qs)
        return self.qs

    def _fixed_point_iteration(self, ll, log_prior):
        """``legacy/algos/fpi.py:263-319``: every factor updated from the previous iterate, stop on dF < dF_tol."""
        ns = self.num_states
        ll = [l.reshape([ns[f] for f in self.A_factor_list[m]]) for m, l in enumerate(ll)]
        params = self.inference_params
        qs = [np.ones(n) / n for n in ns]
        prev_vfe = _free_energy(qs, log_prior)
        joint_ll = None
        if params["compute_vfe"]:
            joint_ll = np.zeros(ns)
            for m, l in enumerate(ll):
                dims = [1] * self.num_factors
                for f in self.A_factor_list[m]:
                    dims[f] = ns[f]
                joint_ll += l.reshape(dims)
        dF, iteration = params["dF"], 0
        while iteration < params["num_iter"] and (not params["compute_vfe"] or dF >= params["dF_tol"]):
            new = []
            for f in range(self.num_factors):
                qL = np.zeros(ns[f])
                for m in self.A_modality_list[f]:
                    factors = self.A_factor_list[m]
                    qL += _contract(ll[m], [qs[g] for g in factors], factors.index(f))
                new.append(softmax(qL + log_prior[f]))
            qs = new
            if params["compute_vfe"]:
                vfe = _free_energy(qs, log_prior, joint_ll)
                dF = abs(prev_vfe - vfe)
                prev_vfe = vfe
            iteration += 1
        return qs

    # -- planning --------------------------------------------------------------------------

    def _log_preferences(self):
        """Per modality, ln(softmax(C) + 1e-16) as (H, No): row tau for planning step tau (a 1-D C tiled).

        Cached while ``self.C`` holds the same values (legacy recomputes it every call, so reassigning
        or editing ``agent.C`` must still take effect).
        """
        C = [np.asarray(c, dtype=float) for c in self.C]
        if self._ln_c_cache is not None:
            policy_len, cached_C, ln_c = self._ln_c_cache
            if (policy_len == self.policy_len and len(cached_C) == len(C)
                    and all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(cached_C, C))):
                return ln_c
        ln_c = []
        for c in C:
            c = np.tile(c[:, None], (1, self.policy_len)) if c.ndim == 1 else c[:, :self.policy_len]
            e = np.exp(c - c.max(axis=0))
            ln_c.append(np.ascontiguousarray(np.log(e / e.sum(axis=0) + EPS_VAL).T))
        self._ln_c_cache = (self.policy_len, [c.copy() for c in C], ln_c)
        return ln_c

    def infer_policies(self):
        """Legacy ``infer_policies`` (negative EFE G and q_pi), evaluated level by level over policy prefixes.

        At level tau the nodes are the (prod Nu)^tau action prefixes, node n's parent is n // U and its
        last joint action n % U. A node's score is added to every policy that starts with it.
        """
        U = len(self.joint_actions)
        H = self.policy_len
        ln_c = self._log_preferences()
        param_gain = self.use_param_info_gain
        G = np.zeros(U ** H)
        parents = [q[:, None] for q in self.qs]
        for tau in range(H):
            children = self._roll_out(parents)
            g = np.zeros(U ** (tau + 1))
            for m in range(self.num_modalities):
                x = _joint([children[f] for f in self.A_factor_list[m]])
                g += self._outcome_value(m, x, ln_c[m][tau])
                if param_gain and self.pA is not None:
                    A = self.A[m].matrix
                    g -= np.einsum("ok,ok->k", A @ x, self._wA[m] @ x)
            if param_gain and self.pB is not None:
                g -= self._transition_gain(parents, children)
            G += np.repeat(g, U ** (H - 1 - tau))
            parents = children
        self.G = G
        self.q_pi = softmax(G * self.gamma + np.log(self.E + EPS_VAL))
        return self.q_pi, self.G

    def _roll_out(self, parents):
        """Per factor, the predicted states (Ns, n * U) of every child of the n parent columns."""
        U = len(self.joint_actions)
        children = []
        for f, x in enumerate(parents):
            x = np.ascontiguousarray(x)
            out = np.empty((x.shape[0], x.shape[1] * U))
            for u, a in enumerate(self.joint_actions[:, f]):
                b = self.B[f].matrices[a]
                _transition(b.indptr, b.indices, b.data, x, u, out)
            children.append(out)
        return children

    def _outcome_value(self, m, x, ln_c):
        """Utility plus state info gain of modality m for each column of ``x`` (joint states, n)."""
        A = self.A[m].matrix
        terms = np.empty((2, x.shape[1]))
        obar = np.empty((A.shape[0], x.shape[1]))
        _outcome_terms(A.indptr, A.indices, A.data, np.ascontiguousarray(x), self._h[m], ln_c, terms, obar)
        value = np.zeros(x.shape[1])
        if self.use_utility:
            value += terms[0]
        if self.use_states_info_gain:
            log_obar = obar + EPS_VAL
            np.log(log_obar, out=log_obar)
            value += terms[1] - np.einsum("ok,ok->k", obar, log_obar)
        return value

    def _transition_gain(self, parents, children):
        """sum_f x_tau[f] . ((W(pB_f[..., a]) * [pB > 0]) x_{tau-1}[f]) for every child (``legacy/control.py:856``)."""
        U = len(self.joint_actions)
        gain = np.zeros(children[0].shape[1])
        for f, (x_prev, x) in enumerate(zip(parents, children)):
            for a, w in enumerate(self._wB[f]):
                targets = np.flatnonzero(self.joint_actions[:, f] == a)
                if len(targets):
                    wx = w @ x_prev
                    for u in targets:
                        gain[u::U] += np.einsum("sk,sk->k", x[:, u::U], wx)
        return gain

    # -- learning --------------------------------------------------------------------------

    def update_A(self, obs):
        """Legacy ``update_A``: pA_m[o] += lr * qs (joint over A_factor_list[m]) where A > 0; A = norm(pA)."""
        if self.pA is None:
            raise TypeError("update_A needs pA (Dirichlet counts); this agent was built without it")
        obs = [int(o) for o in np.atleast_1d(obs)]
        for m in self.modalities_to_learn:
            p = self.pA[m].matrix
            positions, columns = row_entries(p, obs[m])
            qx = _joint([self.qs[f][:, None] for f in self.A_factor_list[m]])[:, 0]
            p.data[positions] += self.lr_pA * qx[columns]
        self.A = obj_array([SparseLikelihood(column_normalise(p.matrix), p.shape) for p in self.pA])
        self._refresh_A()
        return self.pA

    def update_B(self, qs_prev):
        """Legacy ``update_B``: pB_f[..., a] += lr * qs_f (x) qs_prev_f where B > 0, a = self.action[f]; B = norm(pB)."""
        if self.pB is None:
            raise TypeError("update_B needs pB (Dirichlet counts); this agent was built without it")
        if self.action is None:
            raise ValueError("update_B needs a previous action (call sample_action first)")
        for f in self.factors_to_learn:
            p = self.pB[f].matrices[int(self.action[f])]
            p.data += self.lr_pB * (self.qs[f][entry_rows(p)] * np.asarray(qs_prev[f])[entry_columns(p)])
        self.B = obj_array([SparseTransitions([column_normalise(b) for b in p.matrices]) for p in self.pB])
        self._refresh_B()
        return self.pB


def to_dense(model):
    """A copy of ``model`` whose A, B, pA, pB are pymdp's dense object arrays (for the legacy agent)."""

    def dense(arrays):
        if arrays is None:
            return None
        return obj_array([a.toarray() if hasattr(a, "toarray") else np.asarray(a) for a in arrays])

    return dataclasses.replace(model, A=dense(model.A), B=dense(model.B), pA=dense(model.pA), pB=dense(model.pB))
