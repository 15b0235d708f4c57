"""Generative models to benchmark: seeded random POMDPs, sparse-structured ones, and named models.

A :class:`Model` holds pymdp's legacy arrays (object arrays A, B, C, D, optional E, pA, pB and
factor lists) and turns them into the keyword arguments of any engine.
"""

from dataclasses import dataclass, field

import numpy as np

from pymdpbench.engines.base import check_distribution, obj_array


@dataclass
class Model:
    """A discrete POMDP in pymdp's legacy layout."""

    name: str
    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    D: np.ndarray
    E: np.ndarray | None = None
    pA: np.ndarray | None = None
    pB: np.ndarray | None = None
    A_factor_list: list | None = None
    B_factor_list: list | None = None
    meta: dict = field(default_factory=dict)

    @property
    def num_states(self):
        return [b.shape[0] for b in self.B]

    @property
    def num_obs(self):
        return [a.shape[0] for a in self.A]

    @property
    def num_controls(self):
        return [b.shape[-1] for b in self.B]

    @property
    def nbytes(self):
        """Bytes of A and B as dense float64 arrays."""
        return int(sum(a.nbytes for a in self.A) + sum(b.nbytes for b in self.B))

    def agent_kwargs(self):
        """Keyword arguments for any engine's ``Agent`` (pymdp.legacy's names)."""
        kwargs = {"A": self.A, "B": self.B, "C": self.C, "D": self.D}
        for key in ("E", "pA", "pB", "A_factor_list", "B_factor_list"):
            value = getattr(self, key)
            if value is not None:
                kwargs[key] = value
        return kwargs


def validate_model(model):
    """Refuse a model pymdp would mis-handle, naming the matrix and column: A, B, D must be
    conditional distributions (columns sum to one, no negative, NaN or inf), C and E finite.
    Matrices held as scipy.sparse are checked by the engine that holds them."""
    for name, arrays in (("A", model.A), ("B", model.B), ("D", model.D)):
        for i, array in enumerate(arrays):
            if isinstance(array, np.ndarray):
                check_distribution(f"{model.name}: {name}[{i}]", array)
    for i, c in enumerate(model.C):
        if not np.all(np.isfinite(c)):
            raise ValueError(f"{model.name}: C[{i}] holds NaN or inf")
    if model.E is not None and (not np.all(np.isfinite(model.E)) or np.any(model.E < 0)):
        raise ValueError(f"{model.name}: E must be finite and non-negative")


def _random_columns(rng, shape, density):
    """Columns (axis 0) drawn from a Dirichlet, a share ``1 - density`` of entries zeroed (one kept per column)."""
    x = rng.gamma(1.0, size=shape)
    if density < 1.0:
        keep = rng.random(shape) < density
        top = x.argmax(axis=0)
        np.put_along_axis(keep, top[None], True, axis=0)
        x = np.where(keep, x, 0.0)
    return x / x.sum(axis=0)


def random_model(
    seed,
    num_states,
    num_obs,
    num_controls,
    A_factor_list=None,
    B_factor_list=None,
    density=1.0,
    c_scale=1.0,
    E_policy_len=None,
    dirichlet=False,
    name=None,
):
    """A seeded random POMDP.

    ``density`` < 1 zeroes that share of A and B entries (every column keeps one), which makes
    the [A>0] masks of learning and the exp(-16) truncation of the info gain matter.
    ``dirichlet=True`` also returns pA, pB (concentrations) so learning and parameter info
    gain can run; then A = norm(pA), as the legacy Agent sets it. ``E_policy_len`` draws a
    non-uniform policy prior E for that policy length.
    """
    rng = np.random.default_rng(seed)
    F, M = len(num_states), len(num_obs)
    A_factor_list = A_factor_list or [list(range(F))] * M
    B_factor_list = B_factor_list or [[f] for f in range(F)]
    A = obj_array(
        [_random_columns(rng, (num_obs[m], *[num_states[f] for f in A_factor_list[m]]), density) for m in range(M)]
    )
    B = obj_array(
        [
            _random_columns(rng, (num_states[f], *[num_states[g] for g in B_factor_list[f]], num_controls[f]), density)
            for f in range(F)
        ]
    )
    C = obj_array([c_scale * rng.standard_normal(n) for n in num_obs])
    D = obj_array([_random_columns(rng, (n,), 1.0) for n in num_states])
    model = Model(
        name or "random",
        A,
        B,
        C,
        D,
        A_factor_list=A_factor_list,
        B_factor_list=B_factor_list,
        meta={"seed": seed, "density": density},
    )
    if E_policy_len:
        model.E = _random_columns(rng, (int(np.prod(num_controls)) ** E_policy_len,), 1.0)
    if dirichlet:
        model.pA = obj_array([a * rng.uniform(1.0, 10.0) for a in A])
        model.pB = obj_array([b * rng.uniform(1.0, 10.0) for b in B])
    return model


def sparse_model(seed, num_states, num_obs, num_controls, nnz_per_column=4, name=None):
    """A seeded one-factor, one-modality POMDP built directly sparse, never dense.

    Each action's ``B[0][:, :, u]`` is a random permutation matrix; each column of ``A[0]`` has
    ``nnz_per_column`` non-zeros (distinct rows, Dirichlet(1) weights). Layout: ``A[0]`` is a
    ``SparseLikelihood`` (one CSC matrix, No x Ns) and ``B[0]`` a ``SparseTransitions`` (one CSR
    Ns x Ns matrix per action), both from ``pymdpbench.engines.sparse``; their ``shape`` is the legacy
    dense shape, their ``nbytes`` the bytes actually stored, and ``engines.sparse.to_dense(model)``
    gives the dense model the legacy agent takes (small sizes only). C is standard normal, D a
    Dirichlet(1) draw. Memory and time grow with Ns * nnz_per_column.
    """
    import scipy.sparse as sp

    from pymdpbench.engines.sparse import SparseLikelihood, SparseTransitions

    rng = np.random.default_rng(seed)
    k = min(nnz_per_column, num_obs)
    index = np.int32 if max(num_states * k, num_obs) < np.iinfo(np.int32).max else np.int64
    if k == num_obs:
        rows = np.broadcast_to(np.arange(num_obs, dtype=index), (num_states, k)).copy()
    else:
        rows = rng.integers(num_obs, size=(num_states, k), dtype=index)
        while True:  # redraw repeated rows within a column until all k are distinct
            rows.sort(axis=1)
            repeated = np.zeros(rows.shape, dtype=bool)
            repeated[:, 1:] = rows[:, 1:] == rows[:, :-1]
            if not repeated.any():
                break
            rows[repeated] = rng.integers(num_obs, size=int(repeated.sum()), dtype=index)
    weights = rng.gamma(1.0, size=(num_states, k))
    weights /= weights.sum(axis=1, keepdims=True)
    columns = sp.csc_array(
        (weights.ravel(), rows.ravel(), np.arange(0, num_states * k + 1, k, dtype=index)), shape=(num_obs, num_states)
    )
    A = obj_array([SparseLikelihood(columns)])
    # row r of a permutation matrix holds one 1, in a column drawn without replacement
    one_per_row = np.arange(num_states + 1, dtype=index)
    B = obj_array(
        [
            SparseTransitions(
                [
                    sp.csr_array(
                        (np.ones(num_states), rng.permutation(num_states).astype(index), one_per_row),
                        shape=(num_states, num_states),
                    )
                    for _ in range(num_controls)
                ]
            )
        ]
    )
    C = obj_array([rng.standard_normal(num_obs)])
    D = obj_array([_random_columns(rng, (num_states,), 1.0)])
    return Model(name or "sparse", A, B, C, D, meta={"seed": seed, "nnz_per_column": k, "density": k / num_obs})
