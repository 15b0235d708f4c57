"""pymdp's legacy Agent on sparse matrices: A and B are never densified, memory grows with their non-zeros.

Layout (also what the constructor and attribute assignment accept, besides pymdp's dense arrays):

* ``A[m]``, legacy shape ``(No, Ns_f for f in A_factor_list[m])``, is one CSC matrix of shape
  ``(No, prod Ns)`` whose columns are legacy's ``A[m].reshape(No, -1)`` (C order, the first factor
  most significant): a :class:`SparseLikelihood`, or any scipy.sparse matrix of that shape. CSC,
  because planning walks A column by column (reading the predicted states in order and scattering
  into the few outcomes); the one row an observation selects is found by a scan of the row
  indices, O(nnz) and cheap next to planning.
* ``B[f]``, legacy shape ``(Ns, Ns_g for g in B_factor_list[f], Nu)``, is one CSR matrix
  ``B[f][..., u].reshape(Ns, -1)`` per action: a :class:`SparseTransitions`, or a list of ``Nu``
  scipy.sparse matrices. A factor whose transitions depend on other factors (``B_factor_list``)
  reads the outer product of their beliefs, as legacy (``legacy/control.py:505-541``).
* ``pA`` and ``pB`` take the same forms. Learning adds counts where ``A > 0`` (``B > 0``), so it
  keeps the sparsity pattern; the arrays are replaced, never written into.

The numerics are those of legacy's VANILLA agent in float64 (``pymdp/legacy``): the empirical
prior from B and the previous action; a one-shot softmax posterior for one factor and legacy's
Jacobi fixed-point iteration with its dF stop rule for several (on the dense joint grid of the
factors, as legacy); utility with log-softmax C; the state information gain with the exp(-16)
truncation in its vectorised form ``IG = w.h - o.ln(o + 1e-16)``; the Dirichlet parameter
information gain; ``update_A``/``update_B``/``update_D``. Shared legacy maths (constants, ln
softmax C, policies, the reshaped log-likelihood of the free energy, action selection) comes
from :mod:`pymdpbench.engines.legacy_math`, the constructor and bookkeeping from
:class:`~pymdpbench.engines.base.LegacyAgent`. Policies (any set of equal-length policies) are
evaluated as a tree of their prefixes, level by level, so a prefix shared by several policies is
rolled out and scored once.

Changes after construction take effect at the next call, as in legacy. Assigning A, B, pA or pB
(the whole object array or one entry, dense or sparse) converts the value to this layout; each
call first converts entries assigned into the object arrays since the last one (a type check per
entry). Nothing is cached from A or B: the kernels read their stored values at every call, and the
term ``h(s) = sum_o A ln(A + e^-16)`` of the state info gain is computed inside the planning kernel
for the states legacy keeps (q(s) > e^-16), so an in-place edit of A's values cannot leave it
stale. ``W(pA)`` and ``W(pB)`` (parameter info gain only) are cached with the matrix they came from
and a copy of its stored values, and recomputed when either differs (:class:`_Derived`). C, D, E,
the policies and the settings are read at every call (ln softmax C cached on C's values, the
policy tree on the policies'). Costs: ``docs/engines-sparse.md``.

Not supported, refused by :meth:`Agent.supports` and the constructor alike (:attr:`Agent.not_implemented`):
MMP (``inference_algo``, ``inference_horizon``), sophisticated and inductive (``H``) inference.
"""

import dataclasses
import operator

import numba
import numpy as np
import scipy.sparse as sp

from pymdpbench.engines.base import LegacyAgent, check_factor_lists, describe, is_default, obj_array, resolve_indices
from pymdpbench.engines.legacy_math import EPS_VAL, EXP_M16, LOG_EPS, joint_log_likelihood, log_preferences, softmax


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


#: Entries of the largest legacy (dense) array that ``np.asarray``, indexing or item assignment of a
#: sparse A or B will build (512 MiB in float64); beyond it they refuse, naming the array.
DENSE_LIMIT = 2**26


class _LegacyIndexing:
    """The legacy dense array's idioms on a sparse A[m] or B[f], for models small enough to densify:
    ``np.asarray(x)``, ``x[key]`` (a dense copy) and ``x[key] = value`` (an in-place edit: the
    stored matrices are rebuilt from the edited dense array)."""

    def _dense(self):
        size = int(np.prod(self.shape))
        if size > DENSE_LIMIT:
            raise ValueError(
                f"{self.name} has {size:,} entries in its legacy dense form (more than {DENSE_LIMIT:,}): "
                "read or edit its sparse matrices instead"
            )
        return self.toarray()

    def __array__(self, dtype=None, copy=None):
        dense = self._dense()
        return dense if dtype is None else dense.astype(dtype, copy=False)

    def __getitem__(self, key):
        return self._dense()[key]

    def __setitem__(self, key, value):
        dense = self._dense()
        dense[key] = value
        self._store_dense(dense)

    def _in_place(self, op, other):
        """``x op= other``: a non-zero scalar scales the stored values in place (pattern kept); anything
        else goes through the dense array."""
        if np.ndim(other) == 0 and op in (operator.imul, operator.itruediv) and other != 0 and np.isfinite(other):
            for matrix in self._stored():
                op(matrix.data, other)
        else:
            dense = self._dense()
            op(dense, other)
            self._store_dense(dense)
        return self

    def __imul__(self, other):
        return self._in_place(operator.imul, other)

    def __itruediv__(self, other):
        return self._in_place(operator.itruediv, other)

    def __iadd__(self, other):
        return self._in_place(operator.iadd, other)

    def __isub__(self, other):
        return self._in_place(operator.isub, other)

    # arithmetic that builds a new array gives the dense legacy array, as legacy's would
    def __mul__(self, other):
        return self._dense() * other

    __rmul__ = __mul__

    def __add__(self, other):
        return self._dense() + other

    __radd__ = __add__

    def __sub__(self, other):
        return self._dense() - other

    def __truediv__(self, other):
        return self._dense() / other


class SparseLikelihood(_LegacyIndexing):
    """A[m] of legacy shape ``(No, *Ns)`` held as one CSC matrix of shape ``(No, prod Ns)``.

    Assigning ``.matrix`` (any scipy.sparse matrix or dense 2-D array of that shape) stores it in
    canonical CSC form; so does an item assignment in legacy indexing (``A[m][o, s] = v``).
    """

    def __init__(self, matrix, shape=None, name="A"):
        self.name = name
        self.shape = tuple(shape) if shape is not None else tuple(matrix.shape)
        self.matrix = matrix

    @property
    def matrix(self):
        return self._matrix

    @matrix.setter
    def matrix(self, value):
        self._matrix = _canonical(value, (self.shape[0], int(np.prod(self.shape[1:]))), self.name, sp.csc_array)

    ndim = property(lambda self: len(self.shape))
    nbytes = property(lambda self: _nbytes(self.matrix), doc="Bytes actually stored (data, indices, indptr).")

    def toarray(self):
        """The dense legacy array (small models only)."""
        return self.matrix.toarray().reshape(self.shape)

    def _store_dense(self, dense):
        self.matrix = dense.reshape(self.shape[0], -1)

    def _stored(self):
        return (self.matrix,)


class SparseTransitions(_LegacyIndexing):
    """B[f] of legacy shape ``(Ns, *Ns_parents, Nu)`` held as one CSR matrix ``(Ns, prod Ns_parents)`` per action.

    ``shape`` defaults to ``(Ns, Ns, Nu)`` (a factor that depends on itself only). Assigning
    ``.matrices`` (a list of per-action matrices) stores them in canonical CSR form; so does an item
    assignment in legacy indexing (``B[f][:, :, u] = ...``).
    """

    def __init__(self, matrices, shape=None, name="B"):
        self.name = name
        first = matrices[0]
        self.shape = tuple(shape) if shape is not None else (*first.shape, len(matrices))
        self.matrices = matrices

    @property
    def matrices(self):
        return self._matrices

    @matrices.setter
    def matrices(self, value):
        if len(value) != self.shape[-1]:
            raise ValueError(f"{self.name} needs {self.shape[-1]} matrices (one per action), got {len(value)}")
        size = (self.shape[0], int(np.prod(self.shape[1:-1])))
        self._matrices = tuple(_canonical(b, size, f"{self.name}[..., {u}]", sp.csr_array) for u, b in enumerate(value))

    ndim = property(lambda self: len(self.shape))
    nbytes = property(lambda self: sum(_nbytes(b) for b in self.matrices), doc="Bytes actually stored.")

    def toarray(self):
        """The dense legacy array (small models only)."""
        return np.stack([b.toarray().reshape(self.shape[:-1]) for b in self.matrices], axis=-1)

    def _store_dense(self, dense):
        self.matrices = [dense[..., u].reshape(self.shape[0], -1) for u in range(self.shape[-1])]

    def _stored(self):
        return self.matrices


def as_likelihood(array, states_shape, name):
    """A :class:`SparseLikelihood` of legacy shape ``(No, *states_shape)`` from a dense legacy array,
    a scipy.sparse ``(No, prod states_shape)`` matrix or a SparseLikelihood (returned as it is)."""
    states_shape = tuple(states_shape)
    if isinstance(array, SparseLikelihood):
        if tuple(array.shape[1:]) != states_shape:
            raise ValueError(f"{name} has shape {array.shape}; its factors need (No, *{states_shape})")
        return array
    if not sp.issparse(array):
        array = np.asarray(array, dtype=np.float64)
        if tuple(array.shape[1:]) != states_shape:
            raise ValueError(f"{name} has shape {tuple(array.shape)}; its factors need (No, *{states_shape})")
        array = array.reshape(array.shape[0], -1)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (No, prod Ns) when sparse, got {array.ndim}-D")
    return SparseLikelihood(array, (array.shape[0], *states_shape), name)


def as_transitions(array, parents_shape, name):
    """A :class:`SparseTransitions` of legacy shape ``(Ns, *parents_shape, Nu)`` from a dense legacy
    array, a list of per-action ``(Ns, prod parents_shape)`` matrices or a SparseTransitions."""
    parents_shape = tuple(parents_shape)
    if isinstance(array, SparseTransitions):
        if tuple(array.shape[1:-1]) != parents_shape:
            raise ValueError(f"{name} has shape {array.shape}; B_factor_list needs (Ns, *{parents_shape}, Nu)")
        return array
    if isinstance(array, (list, tuple)):
        return SparseTransitions(list(array), (array[0].shape[0], *parents_shape, len(array)), name)
    if sp.issparse(array):
        raise ValueError(f"{name} is one sparse matrix; give one (Ns, prod Ns) matrix per action (a list)")
    array = np.asarray(array, dtype=np.float64)
    if tuple(array.shape[1:-1]) != parents_shape:
        raise ValueError(f"{name} has shape {array.shape}; B_factor_list needs (Ns, *{parents_shape}, Nu)")
    return SparseTransitions(
        [array[..., u].reshape(array.shape[0], -1) for u in range(array.shape[-1])], array.shape, name
    )


def _items(arrays, single_types, name):
    """The per-modality / per-factor entries of A, B, pA or pB (object array, list, or one entry)."""
    if arrays is None:
        return None
    if isinstance(arrays, single_types) or sp.issparse(arrays):
        return [arrays]
    if isinstance(arrays, np.ndarray):
        if arrays.dtype != object:
            return [arrays.squeeze()]  # legacy's to_obj_array
        return list(arrays)
    if isinstance(arrays, (list, tuple)):
        return list(arrays)
    raise TypeError(f"{name} must be an object array or a list, got {type(arrays).__name__}")


def _rows(entry):
    """Ns of a B entry in any accepted form."""
    if isinstance(entry, (list, tuple)):
        return entry[0].shape[0]
    return entry.shape[0]


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

    Same test as ``base.check_distribution`` (``np.isclose`` to 1), on the stored entries only.
    Columns are named by their legacy index (``column_shape`` unravels them).
    """
    data = matrix.data
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{name} holds NaN or inf")
    if np.any(data < 0):
        j = int(np.argmax(data < 0))
        column = np.unravel_index(int(entry_columns(matrix)[j]), column_shape)
        raise ValueError(
            f"{name} has a negative probability at index {(int(entry_rows(matrix)[j]), *(int(i) for i in column))}"
        )
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


def sparse_wnorm_masked(matrix):
    """``legacy_math.wnorm_masked`` on P's stored entries: 1/sum_o(P + 1e-16) - 1/(P + 1e-16), masked to P > 0.

    The column sum over the dense column adds 1e-16 for each of its No rows; zeros are masked out.
    """
    data = matrix.data + EPS_VAL
    columns = entry_columns(matrix)
    sums = column_sums(matrix, data)
    sums += (matrix.shape[0] - np.bincount(columns, minlength=matrix.shape[1])) * EPS_VAL
    return _with_data(matrix, 1.0 / sums[columns] - 1.0 / data)


class _Derived:
    """A value derived from a sparse matrix, recomputed when the matrix changed since the last call.

    Changed means: another matrix object, other data/indices/indptr arrays (by identity), or other
    stored values (by content, against a copy taken when the value was computed). Costs one read
    of the stored values per call and one copy of them per recomputation.
    """

    __slots__ = ("function", "source", "snapshot", "value")

    def __init__(self, function):
        self.function = function
        self.source = None

    def __call__(self, matrix):
        source = (matrix, matrix.data, matrix.indices, matrix.indptr)
        if (
            self.source is None
            or any(a is not b for a, b in zip(source, self.source))
            or not np.array_equal(matrix.data, self.snapshot)
        ):
            self.value = self.function(matrix)
            self.source = source
            self.snapshot = matrix.data.copy()
        return self.value


@numba.njit(cache=True)
def _outcome_terms(indptr, indices, data, X, ln_c, info_gain, out, obar):
    """Utility and the first part of the state info gain of n predicted state distributions, one pass over A.

    A is CSC (No, J): ``indptr`` (J+1,), ``indices`` (nnz,) rows, ``data`` (nnz,). ``X`` (J, n): the n
    distributions x, one per column. ``ln_c`` (No,): ln(softmax(C) + 1e-16). Writes
    ``out[0, k] = (A x_k) . ln_c = x_k . (A^T ln_c)`` and, if ``info_gain``, ``out[1, k] = w_k . h`` with
    ``w_k = x_k [x_k > exp(-16)]`` (legacy's truncation) and ``h(s) = sum_o A[o, s] ln(A[o, s] + exp(-16))``,
    and ``obar[:, k] = A w_k`` (No, n); the caller subtracts ``obar . ln(obar + 1e-16)``.

    h(s) is computed here, from A's current values, for the states some w_k keeps -- as legacy's
    ``spm_MDP_G`` does (``legacy/maths.py:547-568``) -- so it can never be stale, and beliefs
    concentrated on a few states cost a few logarithms.
    """
    J, n = X.shape
    threshold = EXP_M16  # a compile-time constant to numba
    w = np.empty(n)
    out[:] = 0.0
    obar[:] = 0.0
    for s in range(J):
        c = 0.0
        for j in range(indptr[s], indptr[s + 1]):
            c += data[j] * ln_c[indices[j]]
        kept = False
        for k in range(n):
            x = X[s, k]
            out[0, k] += x * c
            w[k] = x if x > threshold and info_gain else 0.0
            kept = kept or w[k] > 0.0
        if not kept:
            continue
        h = 0.0
        for j in range(indptr[s], indptr[s + 1]):
            a = data[j]
            h += a * np.log(a + threshold)
            o = indices[j]
            for k in range(n):
                obar[o, k] += w[k] * a
        for k in range(n):
            out[1, k] += w[k] * h


@numba.njit(cache=True)
def _transition(indptr, indices, data, X, parents, children, out):
    """``out[:, children[k]] = B @ X[:, parents[k]]`` for every k: the children of some nodes under one action.

    B is CSR (Ns, J): ``indptr`` (Ns+1,), ``indices`` (nnz,), ``data`` (nnz,). ``X`` (J, n_prev): the
    parents' (joint) state distributions, one per column. ``out`` (Ns, n): the children's.
    """
    for r in range(indptr.shape[0] - 1):
        for k in range(parents.shape[0]):
            p = parents[k]
            total = 0.0
            for j in range(indptr[r], indptr[r + 1]):
                total += data[j] * X[indices[j], p]
            out[r, children[k]] = total


#: rows of ō per block in :func:`_outcome_entropy_term` (its temporary is this many rows, not all No).
ENTROPY_BLOCK_ROWS = 2048


def _outcome_entropy_term(obar):
    """Per column k, sum_o ō[o, k] ln(ō[o, k] + 1e-16) (``legacy/maths.py:571``), in blocks of rows so
    that the temporary ln(ō + 1e-16) stays small next to ō."""
    total = np.zeros(obar.shape[1])
    for start in range(0, obar.shape[0], ENTROPY_BLOCK_ROWS):
        block = obar[start : start + ENTROPY_BLOCK_ROWS]
        log_block = block + EPS_VAL
        np.log(log_block, out=log_block)
        total += np.einsum("ok,ok->k", block, log_block)
    return total


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
        vfe += q.dot(np.log(q + EPS_VAL)) + -q.dot(lp)
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


@dataclasses.dataclass(frozen=True)
class _Level:
    """One level (step tau) of the tree of policy prefixes.

    ``by_action[f]``: per action a of factor f taken at this step, (a, children, parents): the
    nodes of this level reached by a and their parent nodes on the level above (the root is node 0).
    ``policy_node`` (P,): each policy's node on this level.
    """

    size: int
    by_action: list
    policy_node: np.ndarray


def policy_tree(policies):
    """The levels of the prefix tree of ``policies`` ((P, H, F) ints); nodes in lexicographic order."""
    P, H, F = policies.shape
    codes = np.zeros((P, H), dtype=np.int64)
    for f in range(F):
        codes = codes * (int(policies[:, :, f].max()) + 1) + policies[:, :, f]
    levels, previous = [], np.zeros(P, dtype=np.int64)
    for tau in range(H):
        _, first, node = np.unique(codes[:, : tau + 1], axis=0, return_index=True, return_inverse=True)
        node = node.reshape(-1)
        parent = previous[first]
        actions = policies[first, tau, :]
        by_action = [
            [(int(a), np.flatnonzero(actions[:, f] == a), parent[actions[:, f] == a]) for a in np.unique(actions[:, f])]
            for f in range(F)
        ]
        levels.append(_Level(len(first), by_action, node))
        previous = node
    return levels


class Agent(LegacyAgent):
    """pymdp.legacy's Agent on sparse matrices (see the module docstring for the accepted layouts).

    ``self.A[m]`` is a :class:`SparseLikelihood`, ``self.B[f]`` a :class:`SparseTransitions`
    (``toarray()`` gives the legacy array). The constructor is :class:`LegacyAgent`'s; the storage
    hooks ``_as_model`` and ``_expected`` hold the model sparse.
    """

    #: Refused at any value but the legacy default (see ``pymdpbench.engines.base.NOT_IMPLEMENTED``).
    not_implemented = {
        "H": "inductive inference",
        "inference_algo": "marginal message passing (MMP)",
        "sophisticated": "sophisticated inference",
    }

    # -- storage ---------------------------------------------------------------------------

    def _as_model(self, A, B, pA, pB, A_factor_list, B_factor_list):
        """Hook of the constructor: B, then A (whose conversion needs Ns), in sparse form; A = norm(pA), B = norm(pB)."""
        B_items = _items(pB if pB is not None else B, SparseTransitions, "pB" if pB is not None else "B")
        num_states = [_rows(b) for b in B_items]
        F = len(num_states)
        B_factor_list = check_factor_lists("B_factor_list", B_factor_list, F, F)
        transitions = [
            as_transitions(b, [num_states[g] for g in B_factor_list[f]], f"B[{f}]") for f, b in enumerate(B_items)
        ]
        A_items = _items(pA if pA is not None else A, SparseLikelihood, "pA" if pA is not None else "A")
        A_factor_list = check_factor_lists("A_factor_list", A_factor_list, len(A_items), F)
        likelihoods = [
            as_likelihood(a, [num_states[f] for f in A_factor_list[m]], f"A[{m}]") for m, a in enumerate(A_items)
        ]
        pA = obj_array(likelihoods) if pA is not None else None
        pB = obj_array(transitions) if pB is not None else None
        A = self._expected(pA) if pA is not None else obj_array(likelihoods)
        B = self._expected(pB) if pB is not None else obj_array(transitions)
        for m, a in enumerate(A):
            check_columns(f"A[{m}]", a.matrix, a.shape[1:])
        for f, t in enumerate(B):
            for u, b in enumerate(t.matrices):
                check_columns(f"B[{f}][..., {u}]", b, t.shape[1:-1])
        return A, B, pA, pB

    def _expected(self, counts):
        """norm(pA) or norm(pB), on the counts' pattern (index arrays shared)."""
        return obj_array(
            [
                SparseLikelihood(column_normalise(p.matrix), p.shape, p.name)
                if isinstance(p, SparseLikelihood)
                else SparseTransitions([column_normalise(b) for b in p.matrices], p.shape, p.name)
                for p in counts
            ]
        )

    def _likelihoods(self, value, name):
        items = _items(value, SparseLikelihood, name)
        if len(items) != self.num_modalities:
            raise ValueError(f"{name} has {len(items)} modalities; the agent has {self.num_modalities}")
        return obj_array(
            [
                as_likelihood(a, [self.num_states[f] for f in fs], f"{name}[{m}]")
                for m, (a, fs) in enumerate(zip(items, self.A_factor_list))
            ]
        )

    def _transitions(self, value, name):
        items = _items(value, SparseTransitions, name)
        if len(items) != self.num_factors:
            raise ValueError(f"{name} has {len(items)} factors; the agent has {self.num_factors}")
        return obj_array(
            [
                as_transitions(b, [self.num_states[g] for g in fs], f"{name}[{f}]")
                for f, (b, fs) in enumerate(zip(items, self.B_factor_list))
            ]
        )

    A = property(
        lambda self: self._A,
        lambda self, v: setattr(self, "_A", self._likelihoods(v, "A")),
        doc="Per modality a SparseLikelihood; assigning any accepted form converts it.",
    )
    B = property(
        lambda self: self._B,
        lambda self, v: setattr(self, "_B", self._transitions(v, "B")),
        doc="Per factor a SparseTransitions; assigning any accepted form converts it.",
    )
    pA = property(
        lambda self: self._pA,
        lambda self, v: setattr(self, "_pA", None if v is None else self._likelihoods(v, "pA")),
        doc="Dirichlet counts over A (None, or as A).",
    )
    pB = property(
        lambda self: self._pB,
        lambda self, v: setattr(self, "_pB", None if v is None else self._transitions(v, "pB")),
        doc="Dirichlet counts over B (None, or as B).",
    )

    def _sync(self):
        """Refuse MMP or sophisticated inference switched on after construction (legacy reads both
        settings at each call); convert entries assigned into the object arrays since the last call
        (``agent.A[0] = dense``)."""
        if self.sophisticated or self.inference_algo not in ("VANILLA", None):
            for name in ("inference_algo", "sophisticated"):
                if not is_default(name, getattr(self, name)):
                    raise ValueError(
                        f"{name} was set to {describe(getattr(self, name))} after construction: "
                        f"{self.not_implemented[name]} is not supported by {__name__}.Agent"
                    )
        for name, kind, convert in (
            ("_A", SparseLikelihood, self._likelihoods),
            ("_B", SparseTransitions, self._transitions),
            ("_pA", SparseLikelihood, self._likelihoods),
            ("_pB", SparseTransitions, self._transitions),
        ):
            arrays = self.__dict__.get(name)
            if arrays is not None and not all(isinstance(x, kind) for x in arrays):
                converted = convert(arrays, name[1:])
                arrays[:] = converted  # keeps the object array the caller may hold

    def _cached(self, kind, index, function, matrix):
        """``function(matrix)``, recomputed only when the matrix changed (:class:`_Derived`)."""
        caches = self.__dict__.setdefault("_caches", {})
        cache = caches.get((kind, index))
        if cache is None:
            cache = caches[(kind, index)] = _Derived(function)
        return cache(matrix)

    @classmethod
    def warmup(cls):
        """Compile (or load from numba's disk cache) the kernels on a tiny model; seconds taken.
        numpy's global RNG is left as it was."""
        import time

        from pymdpbench.models import random_model

        start = time.perf_counter()
        state = np.random.get_state()
        try:
            model = random_model(0, [3, 2], [2], [2, 1], dirichlet=True)
            agent = cls(**model.agent_kwargs(), use_param_info_gain=True)
            for obs in ([0], [1]):
                qs_prev = agent.qs
                agent.infer_states(obs)
                agent.infer_policies()
                agent.sample_action()
                agent.update_A(obs)
                agent.update_B(qs_prev)
        finally:
            np.random.set_state(state)
        return time.perf_counter() - start

    # -- perception ------------------------------------------------------------------------

    def _log_likelihood(self, m, o, distribution):
        """ln(A_m[o, s] + 1e-16) (or ln(A_m^T o + 1e-16) for a distribution o) for every joint state s (1-D)."""
        A = self.A[m].matrix
        if distribution:
            return np.log(A.T @ np.asarray(o, dtype=float) + EPS_VAL)
        o = int(o)
        if not 0 <= o < A.shape[0]:
            raise ValueError(f"observation {o} of modality {m} is outside 0..{A.shape[0] - 1}")
        ll = np.full(A.shape[1], LOG_EPS)
        positions, columns = row_entries(A, o)
        ll[columns] = np.log(A.data[positions] + EPS_VAL)
        return ll

    def _observations(self, observation, distr_obs):
        if not distr_obs:
            obs = list(np.atleast_1d(np.asarray(observation)))
        elif isinstance(observation, np.ndarray) and observation.dtype != object:
            obs = [observation]  # one modality, its distribution
        else:
            obs = list(observation)
        if len(obs) != self.num_modalities:
            raise ValueError(f"observation has {len(obs)} modalities; the agent has {self.num_modalities}")
        return obs

    def _predicted(self, qs, f, matrix):
        """B_f[..., a] applied to the outer product of the beliefs of B_factor_list[f]."""
        return matrix @ _joint([np.asarray(qs[g], dtype=float)[:, None] for g in self.B_factor_list[f]])[:, 0]

    def infer_states(self, observation, distr_obs=False):
        """Legacy VANILLA ``infer_states`` (``agent.py:478-550``): empirical prior, then softmax (one
        factor) or Jacobi FPI (``algos/fpi.py:159-321``). ``distr_obs``: each observation a distribution."""
        self._sync()
        obs = self._observations(observation, distr_obs)
        if self.action is None:
            prior = [np.asarray(d, dtype=float) for d in self.D]
        else:
            prior = [
                self._predicted(self.qs, f, self.B[f].matrices[int(self.action[f])]) for f in range(self.num_factors)
            ]
        log_prior = [np.log(p + EPS_VAL) for p in prior]
        ll = [self._log_likelihood(m, o, distr_obs) for m, o in enumerate(obs)]
        if self.num_factors == 1:
            joint_ll = ll[0]
            for extra in ll[1:]:
                joint_ll = joint_ll + extra
            qs = [softmax(joint_ll + log_prior[0])]
        else:
            qs = self._fixed_point_iteration(ll, log_prior)
        self.qs = obj_array(qs)
        self._record_qs(self.qs)
        return self.qs

    def _fixed_point_iteration(self, ll, log_prior):
        """``legacy/algos/fpi.py:263-319``: every factor updated from the previous iterate, stop on dF < dF_tol."""
        ns = self.num_states
        ll = [x.reshape([ns[f] for f in self.A_factor_list[m]]) for m, x in enumerate(ll)]
        params = self.inference_params
        qs = [np.ones(n) / n for n in ns]
        prev_vfe = _free_energy(qs, log_prior)
        joint_ll = joint_log_likelihood(ll, self.A_factor_list, ns) if params["compute_vfe"] else None
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

    def _tree(self):
        """The prefix tree of ``self.policies``, rebuilt when the policies change."""
        policies = np.asarray(self.policies, dtype=np.int64)
        cached = self.__dict__.get("_tree_cache")
        if cached is None or not np.array_equal(cached[0], policies):
            if policies.ndim != 3 or policies.shape[2] != self.num_factors:
                raise ValueError(f"policies has shape {policies.shape}; expected (P, steps, {self.num_factors})")
            if np.any(policies < 0) or np.any(policies >= np.array(self.num_controls)):
                raise ValueError(f"policies hold actions outside num_controls={self.num_controls}")
            cached = self._tree_cache = (policies.copy(), policy_tree(policies))
        return cached[1]

    def _log_preferences(self, horizon):
        """``legacy_math.log_preferences(C, horizon)``, cached while ``self.C`` holds the same values
        (legacy recomputes it every call, so assigning or editing ``agent.C`` takes effect)."""
        C = [np.asarray(c, dtype=float) for c in self.C]
        for m, c in enumerate(C):
            if c.ndim == 2 and c.shape[1] < horizon:
                raise ValueError(f"C[{m}] has {c.shape[1]} columns; policies of {horizon} steps need one per step")
        cached = self.__dict__.get("_ln_c_cache")
        if (
            cached is not None
            and cached[0] == horizon
            and len(cached[1]) == len(C)
            and all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(cached[1], C))
        ):
            return cached[2]
        ln_c = log_preferences(C, horizon)
        self._ln_c_cache = (horizon, [c.copy() for c in C], ln_c)
        return ln_c

    def infer_policies(self):
        """Legacy ``infer_policies`` (negative EFE G and q_pi, ``control.py:364-468``), evaluated level by
        level over the prefix tree of the policies: a node's score is added to every policy through it."""
        self._sync()
        levels = self._tree()
        ln_c = self._log_preferences(len(levels))
        param_gain = self.use_param_info_gain
        G = np.zeros(len(self.policies))
        parents = [np.asarray(q, dtype=float)[:, None] for q in self.qs]
        for tau, level in enumerate(levels):
            children = self._roll_out(parents, level)
            g = np.zeros(level.size)
            for m in range(self.num_modalities):
                x = np.ascontiguousarray(_joint([children[f] for f in self.A_factor_list[m]]))
                g += self._outcome_value(m, x, ln_c[m][tau])
                if param_gain and self.pA is not None:
                    wA = self._cached("wA", m, sparse_wnorm_masked, self.pA[m].matrix)
                    g -= np.einsum("ok,ok->k", self.A[m].matrix @ x, wA @ x)
            if param_gain and self.pB is not None:
                g -= self._transition_gain(parents, children, level)
            G += g[level.policy_node]
            parents = children
        E = np.asarray(self.E, dtype=float)
        if E.shape != G.shape:
            raise ValueError(f"E has shape {E.shape}; there are {len(G)} policies")
        self.G = G
        self.q_pi = softmax(G * self.gamma + np.log(E + EPS_VAL))
        self._record_q_pi(self.q_pi)
        return self.q_pi, self.G

    def _parents_joint(self, parents, f):
        return np.ascontiguousarray(_joint([parents[g] for g in self.B_factor_list[f]]))

    def _roll_out(self, parents, level):
        """Per factor, the predicted states (Ns, level.size) of the level's nodes."""
        children = []
        for f in range(self.num_factors):
            X = self._parents_joint(parents, f)
            out = np.empty((self.num_states[f], level.size))
            for a, kids, pars in level.by_action[f]:
                b = self.B[f].matrices[a]
                _transition(b.indptr, b.indices, b.data, X, pars, kids, out)
            children.append(out)
        return children

    def _outcome_value(self, m, x, ln_c):
        """Utility plus state info gain of modality m for each column of ``x`` (joint states, n)."""
        A = self.A[m].matrix
        terms = np.empty((2, x.shape[1]))
        obar = np.empty((A.shape[0], x.shape[1]))
        _outcome_terms(A.indptr, A.indices, A.data, x, ln_c, bool(self.use_states_info_gain), terms, obar)
        value = np.zeros(x.shape[1])
        if self.use_utility:
            value += terms[0]
        if self.use_states_info_gain:
            value += terms[1] - _outcome_entropy_term(obar)
        return value

    def _transition_gain(self, parents, children, level):
        """Per node, sum_f x_tau[f] . ((W(pB_f[..., a]) * [pB > 0]) (x) x_{tau-1}[B_factor_list[f]])
        (``legacy/control.py:856-908``), a = the node's action on f."""
        gain = np.zeros(level.size)
        for f in range(self.num_factors):
            X = self._parents_joint(parents, f)
            for a, kids, pars in level.by_action[f]:
                wx = self._cached("wB", (f, a), sparse_wnorm_masked, self.pB[f].matrices[a]) @ X
                gain[kids] += np.einsum("sk,sk->k", children[f][:, kids], wx[:, pars])
        return gain

    # -- learning --------------------------------------------------------------------------

    def update_A(self, obs):
        """Legacy ``update_A`` (``learning.py:60-111``): pA_m += lr_pA * (o_m (x) qs over A_factor_list[m])
        where A_m > 0, for m in modalities_to_learn; then A = norm(pA). ``obs``: indices, or (as legacy
        accepts an object array) one distribution per modality."""
        self._sync()
        if self.pA is None:
            raise TypeError("update_A needs pA (Dirichlet counts); this agent was built without it")
        distribution = isinstance(obs, np.ndarray) and obs.dtype == object
        obs = list(obs) if distribution else [int(o) for o in np.atleast_1d(obs)]
        pA = list(self.pA)
        for m in resolve_indices(self.modalities_to_learn, self.num_modalities):
            qx = _joint([np.asarray(self.qs[f], dtype=float)[:, None] for f in self.A_factor_list[m]])[:, 0]
            A = self.A[m].matrix
            if distribution:
                seen = A.data > 0
                rows, columns = entry_rows(A)[seen], entry_columns(A)[seen]
                values = np.asarray(obs[m], dtype=float)[rows] * qx[columns]
            else:
                positions, columns = row_entries(A, obs[m])
                columns = columns[A.data[positions] > 0]
                rows = np.full(len(columns), obs[m])
                values = qx[columns]
            update = sp.csc_array((values, (rows, columns)), shape=A.shape)
            pA[m] = SparseLikelihood(_add(pA[m].matrix, update, self.lr_pA), pA[m].shape, pA[m].name)
        self.pA = obj_array(pA)
        self.A = self._expected(self.pA)
        return self.pA

    def update_B(self, qs_prev):
        """Legacy ``update_B`` (``learning.py:161-210``): pB_f[..., a] += lr_pB * (qs_f (x) qs_prev over
        B_factor_list[f]) where B > 0, a = int(self.action[f]), for f in factors_to_learn; then B = norm(pB)."""
        self._sync()
        if self.pB is None:
            raise TypeError("update_B needs pB (Dirichlet counts); this agent was built without it")
        if self.action is None:
            raise ValueError("update_B needs a previous action (call sample_action first)")
        pB = list(self.pB)
        for f in resolve_indices(self.factors_to_learn, self.num_factors):
            a = int(self.action[f])
            B = self.B[f].matrices[a]
            prev = _joint([np.asarray(qs_prev[g], dtype=float)[:, None] for g in self.B_factor_list[f]])[:, 0]
            q = np.asarray(self.qs[f], dtype=float)
            seen = B.data > 0
            rows, columns = entry_rows(B)[seen], entry_columns(B)[seen]
            update = sp.csr_array((q[rows] * prev[columns], (rows, columns)), shape=B.shape)
            matrices = list(pB[f].matrices)
            matrices[a] = _add(matrices[a], update, self.lr_pB)
            pB[f] = SparseTransitions(matrices, pB[f].shape, pB[f].name)
        self.pB = obj_array(pB)
        self.B = self._expected(self.pB)
        return self.pB


def _entry_keys(matrix):
    """A sorted int64 key per stored entry of a canonical CSR/CSC matrix: major index * minor size + minor index."""
    minor = matrix.shape[0] if matrix.format == "csc" else matrix.shape[1]
    major = np.repeat(np.arange(len(matrix.indptr) - 1, dtype=np.int64), np.diff(matrix.indptr))
    return major * minor + matrix.indices


def _add(counts, update, lr):
    """counts + lr * update (same format): in counts' own pattern when it holds every entry of
    ``update`` (the usual case, A = norm(pA)); else by scipy's sum, and the pattern grows."""
    update = type(counts)(update)
    update.sum_duplicates()
    if update.nnz == 0:
        return counts
    keys, new = _entry_keys(counts), _entry_keys(update)
    positions = np.minimum(np.searchsorted(keys, new), max(len(keys) - 1, 0))
    if len(keys) and np.array_equal(keys[positions], new):
        data = counts.data.copy()
        data[positions] += lr * update.data
        return _with_data(counts, data)
    return counts + lr * update


def to_dense(model):
    """A copy of ``model`` whose A, B, pA, pB are pymdp's dense object arrays (for the legacy agent)."""

    def dense(arrays):
        if arrays is None:
            return None
        return obj_array([a.toarray() if hasattr(a, "toarray") else np.asarray(a) for a in arrays])

    return dataclasses.replace(model, A=dense(model.A), B=dense(model.B), pA=dense(model.pA), pB=dense(model.pB))
