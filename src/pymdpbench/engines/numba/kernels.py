"""The compiled kernels of the numba engines: small, typed, arrays in and arrays out.

They read pymdp's own arrays, in pymdp's layout, as views (never copies), so an in-place edit of
``agent.A[0]`` or ``agent.C[1]`` is what the next call reads. The layouts, named once here:

* ``A``: a tuple of M arrays ``(No_m, S_m)``: ``A[m]`` reshaped, ``S_m`` the joint states of the
  factors of modality m in ``A_factor_list[m]`` order (C order, the first listed factor most
  significant -- pymdp's own axis order).
* ``B``: a tuple of F arrays ``(Ns_f, S_Bf, Nu_f)``: ``B[f]`` reshaped, ``S_Bf`` the joint states of
  ``B_factor_list[f]``.
* ``C``: a tuple of M arrays ``(No_m, T_m)``: a 1-D ``C[m]`` as one column (tiled over the horizon),
  a 2-D one column by column.
* ``deps``: int64 ``(M + F, F + 1)``: row m lists modality m's factors (``deps[m, 0]`` = how many,
  then the factor indices), row M + f lists ``B_factor_list[f]`` the same way.
* ``qs``: a tuple of F vectors; posteriors are written *packed*, factor after factor, into one
  ``(sum Ns,)`` array.
* ``policies``: int64 ``(P, H, F)``.

Formulas, constants and their pymdp sources are in :mod:`pymdpbench.engines.legacy_math`. Kernels
take their constants in the dtype of their inputs, so the float32 engine runs float32 throughout.
"""

import numpy as np
from numba import njit

from pymdpbench.engines.legacy_math import EPS_VAL, EXP_M16, TIE_TOL

_JIT = {"cache": True, "fastmath": {"reassoc", "contract"}}

#: Entries of a matrix or transition array from which its products run in BLAS: below, the loops are as
#: fast or faster (measured, the products under 4 actions, one thread: 8 states 0.10 us in loops against
#: 0.18 in BLAS, 16 states 0.33 in both, 64 states 7.6 against 3.4, 128 states 41 against 12).
BLAS_MIN_ENTRIES = 2048
#: Entries of a transition array from which the products under every action run row by row: one
#: product for all of them reads the array more than once when it leaves the cache (measured, 4
#: actions, one thread: 192 states 15.9 us in one product against 40.7 row by row, 256 states 127
#: against 84, 1,024 states 2.34 ms against 1.37).
BLAS_ROW_ENTRIES = 2**18


@njit(**_JIT)
def _softmax_inplace(x):
    """x <- exp(x - max x) / sum exp(x - max x); x (n,)."""
    top = x.max()
    total = x.dtype.type(0)
    for i in range(x.shape[0]):
        x[i] = np.exp(x[i] - top)
        total += x[i]
    for i in range(x.shape[0]):
        x[i] /= total


@njit(**_JIT)
def _dot(x, y):
    acc = x.dtype.type(0)
    for i in range(x.shape[0]):
        acc += x[i] * y[i]
    return acc


@njit(**_JIT)
def _matvec(M, x, out):
    """out = M @ x; M (n, k) C-contiguous rows. (Kept a bare loop, which LLVM inlines into its
    callers; a branch to BLAS in here measured 10 us more per T-maze step at policy length 3. The
    callers choose :func:`_product` instead from BLAS_MIN_ENTRIES entries.)"""
    for i in range(M.shape[0]):
        acc = M.dtype.type(0)
        for j in range(M.shape[1]):
            acc += M[i, j] * x[j]
        out[i] = acc


@njit(**_JIT)
def _product(M, x, out):
    """out = M @ x in BLAS."""
    np.dot(M, x, out)


@njit(**_JIT)
def _kron_into(deps, row, states, offsets, out):
    """out = (x) of the factor vectors listed in ``deps[row]``, read from the packed ``states`` at
    ``offsets`` (pymdp's ``spm_cross``: the first listed factor most significant); returns its length."""
    k = deps[row, 0]
    n = 1
    out[0] = states.dtype.type(1)
    for r in range(k):
        f = deps[row, 1 + r]
        start = offsets[f]
        size = offsets[f + 1] - start
        # expand in place from the back: out[i * size + j] = out[i] * x_f[j]
        for i in range(n - 1, -1, -1):
            v = out[i]
            for j in range(size - 1, -1, -1):
                out[i * size + j] = v * states[start + j]
        n *= size
    return n


@njit(**_JIT)
def _blas_transition_all(Bf, x, out):
    """:func:`_transition_all` in BLAS."""
    ns, n, nu = Bf.shape
    if Bf.size >= BLAS_ROW_ENTRIES:
        product = np.empty((ns, nu), Bf.dtype)
        for s in range(ns):
            np.dot(Bf[s].T, x, product[s])
    else:
        spread = np.zeros((n * nu, nu), Bf.dtype)
        for j in range(n):
            for a in range(nu):
                spread[j * nu + a, a] = x[j]
        product = np.dot(Bf.reshape(ns, n * nu), spread)
    for s in range(ns):
        for a in range(nu):
            out[a * ns + s] = product[s, a]


@njit(**_JIT)
def _transition_all(Bf, x, out):
    """out[a * Ns + s] = sum_j Bf[s, j, a] x[j] for every action a: the next states under each action,
    one pass over ``Bf`` (Ns, S, Nu) in its own layout. From BLAS_MIN_ENTRIES as one matrix product,
    Bf as (Ns, S Nu) times the (S Nu, Nu) matrix that holds x[j] at row j Nu + a of column a; from
    BLAS_ROW_ENTRIES one matrix-vector product per row s, Bf[s]^T x."""
    ns, n, nu = Bf.shape
    if Bf.size >= BLAS_MIN_ENTRIES:
        _blas_transition_all(Bf, x, out)
        return
    for s in range(ns):  # row s of Bf is a contiguous (S, Nu) block: one pass, Nu sums
        for a in range(nu):
            out[a * ns + s] = 0
        for j in range(n):
            xj = x[j]
            for a in range(nu):
                out[a * ns + s] += Bf[s, j, a] * xj


@njit(**_JIT)
def _blas_transition(Bf, x, a, out):
    """:func:`_transition` in BLAS."""
    ns, n, nu = Bf.shape
    spread = np.zeros(n * nu, Bf.dtype)
    for j in range(n):
        spread[j * nu + a] = x[j]
    np.dot(Bf.reshape(ns, n * nu), spread, out)


@njit(**_JIT)
def _transition(Bf, x, a, out):
    """out[s] = sum_j Bf[s, j, a] x[j]: the next states under action a. From BLAS_MIN_ENTRIES a matrix
    product with x spread to rows j Nu + a (one pass over ``Bf`` in its own layout, as the loop's
    stride-Nu reads make anyway)."""
    ns, n, nu = Bf.shape
    if Bf.size >= BLAS_MIN_ENTRIES:
        _blas_transition(Bf, x, a, out)
        return
    for s in range(ns):
        acc = Bf.dtype.type(0)
        for j in range(n):
            acc += Bf[s, j, a] * x[j]
        out[s] = acc


@njit(**_JIT)
def factor_offsets(B):
    """(F + 1,) start of each factor in a packed posterior."""
    offsets = np.zeros(len(B) + 1, np.int64)
    for f in range(len(B)):
        offsets[f + 1] = offsets[f] + B[f].shape[0]
    return offsets


@njit(**_JIT)
def _pack(vectors, offsets, dtype_of):
    out = np.empty(offsets[-1], dtype_of.dtype)
    for f in range(len(vectors)):
        v = vectors[f]
        for i in range(v.shape[0]):
            out[offsets[f] + i] = v[i]
    return out


@njit(**_JIT)
def _contract(ll, ll_start, deps, m, q, offsets, out, acc_only, idx, size, vals):
    """Expected log-likelihood of modality m per factor, out[f] += sum_{s \\ f} LL_m(s) prod_{g != f} q_g,
    and its full expectation sum_s LL_m(s) prod_g q_g (returned). ``LL_m`` lies at ``ll[ll_start:]``,
    flattened over the factors listed in ``deps[m]`` (the first most significant). idx, size (int64)
    and vals: scratch of at least as many entries as factors."""
    k = deps[m, 0]
    total = 1
    for r in range(k):
        f = deps[m, 1 + r]
        size[r] = offsets[f + 1] - offsets[f]
        total *= size[r]
        idx[r] = 0
    accuracy = q.dtype.type(0)
    for j in range(total):
        v = ll[ll_start + j]
        joint = v
        for r in range(k):
            vals[r] = q[offsets[deps[m, 1 + r]] + idx[r]]
            joint *= vals[r]
        accuracy += joint
        if not acc_only:
            for r in range(k):
                term = v
                for r2 in range(k):
                    if r2 != r:
                        term *= vals[r2]
                out[offsets[deps[m, 1 + r]] + idx[r]] += term
        r = k - 1
        while r >= 0:
            idx[r] += 1
            if idx[r] < size[r]:
                break
            idx[r] = 0
            r -= 1
    return accuracy


@njit(**_JIT)
def _neg_entropy_cross(q, log_prior):
    """sum_f q_f . ln(q_f + 1e-16) - q_f . ln prior_f over packed factors (``maths.py:396-410`` without accuracy)."""
    eps = q.dtype.type(EPS_VAL)
    total = q.dtype.type(0)
    for i in range(q.shape[0]):
        total += q[i] * np.log(q[i] + eps) - q[i] * log_prior[i]
    return total


@njit(**_JIT)
def infer_states(A, B, prev, first, action, obs, deps, acc_deps, fpi, out):
    """Legacy VANILLA state inference (``agent.py:505-520``, ``algos/fpi.py:159-321``) into ``out`` (sum Ns,).

    Prior: ``prev`` itself on the ``first`` step (D), else the empirical prior
    prior_f = B_f[..., a_f] . (x)_{g in B_factor_list[f]} prev_g with a_f = int(action[f]) (the
    agent's float action, truncated as pymdp's ``int``). LL_m = ln(A_m[o_m] + 1e-16).
    One factor: q = softmax(sum_m LL_m + ln(prior + 1e-16)). Several: legacy's parallel (Jacobi)
    fixed-point iteration, its dF stop rule and its first free energy without accuracy. ``acc_deps``
    is ``deps`` with each modality's factors in the order legacy's accuracy term reads them (sorted:
    ``legacy_math.joint_log_likelihood``). fpi = (num_iter, dF, dF_tol, compute_vfe).
    Returns False, computing nothing, when an outcome or an action is out of range or negative (the
    caller then lets pymdp compute, or raise its own error); else True.
    """
    dt = out.dtype
    eps = dt.type(EPS_VAL)
    M = len(A)
    F = len(B)
    for m in range(M):
        if obs[m] < 0 or obs[m] >= A[m].shape[0]:
            return False
    if not first:
        for f in range(F):
            if action[f] < 0 or int(action[f]) >= B[f].shape[2]:
                return False
    offsets = factor_offsets(B)
    log_prior = np.empty(offsets[-1], dt)
    if first:
        for f in range(F):
            for i in range(prev[f].shape[0]):
                log_prior[offsets[f] + i] = np.log(prev[f][i] + eps)
    else:
        packed_prev = _pack(prev, offsets, out)
        work = np.empty(max(1, _max_joint(B)), dt)
        for f in range(F):
            n = _kron_into(deps, M + f, packed_prev, offsets, work)
            seg = log_prior[offsets[f] : offsets[f + 1]]
            _transition(B[f], work[:n], int(action[f]), seg)
            for s in range(seg.shape[0]):
                seg[s] = np.log(seg[s] + eps)
    _posterior(A, obs, log_prior, offsets, deps, acc_deps, fpi, out)
    return True


@njit(**_JIT)
def _posterior(A, obs, log_prior, offsets, deps, acc_deps, fpi, out):
    """The posterior of ``infer_states`` from the log prior ln(prior + 1e-16) (packed) and the outcome
    indices ``obs``, into ``out``: one shot for one factor, the fixed-point iteration for several."""
    dt = out.dtype
    eps = dt.type(EPS_VAL)
    M = len(A)
    F = offsets.shape[0] - 1
    ll_start = np.zeros(M + 1, np.int64)
    for m in range(M):
        ll_start[m + 1] = ll_start[m] + A[m].shape[1]
    ll = np.empty(ll_start[-1], dt)
    for m in range(M):
        row = A[m][obs[m]]
        for j in range(row.shape[0]):
            ll[ll_start[m] + j] = np.log(row[j] + eps)
    if F == 1:
        for s in range(out.shape[0]):
            out[s] = 0
        for m in range(M):
            for s in range(out.shape[0]):
                out[s] += ll[ll_start[m] + s]
        for s in range(out.shape[0]):
            out[s] += log_prior[s]
        _softmax_inplace(out)
        return
    q = np.empty(offsets[-1], dt)
    for f in range(F):
        for i in range(offsets[f], offsets[f + 1]):
            q[i] = dt.type(1.0) / (offsets[f + 1] - offsets[f])
    num_iter, dF, tol, compute_vfe = int(fpi[0]), fpi[1], fpi[2], fpi[3] > 0
    prev_vfe = _neg_entropy_cross(q, log_prior)
    it = 0
    new = np.empty_like(q)
    idx = np.empty(F, np.int64)
    size = np.empty(F, np.int64)
    vals = np.empty(F, dt)
    while it < num_iter and (dF >= tol or not compute_vfe):
        new[:] = 0
        for m in range(M):
            _contract(ll, ll_start[m], deps, m, q, offsets, new, False, idx, size, vals)
        for f in range(F):
            seg = new[offsets[f] : offsets[f + 1]]
            for i in range(seg.shape[0]):
                seg[i] += log_prior[offsets[f] + i]
            _softmax_inplace(seg)
        q[:] = new
        if compute_vfe:
            accuracy = dt.type(0)
            for m in range(M):
                accuracy += _contract(ll, ll_start[m], acc_deps, m, q, offsets, new, True, idx, size, vals)
            vfe = _neg_entropy_cross(q, log_prior) - accuracy
            dF = abs(prev_vfe - vfe)
            prev_vfe = vfe
        it += 1
    out[:] = q


@njit(**_JIT)
def _max_joint(B):
    n = 1
    for f in range(len(B)):
        n = max(n, B[f].shape[1])
    return n


@njit(**_JIT)
def refresh_entropy(A, snapshot, h):
    """h_m(s) = sum_o A_m[o, s] ln(A_m[o, s] + e^-16), recomputed for every modality whose A_m differs
    from its ``snapshot`` (then updated): so an in-place edit of A is seen, and an unchanged A costs
    one comparison pass. snapshot (sum No_m S_m,), h (sum S_m,), packed modality after modality."""
    threshold = h.dtype.type(EXP_M16)
    a_start = 0
    h_start = 0
    for m in range(len(A)):
        Am = A[m]
        no, ns = Am.shape
        same = True
        for o in range(no):
            differs = False
            for s in range(ns):  # no early exit inside a row: the comparison vectorises
                differs |= Am[o, s] != snapshot[a_start + o * ns + s]
            if differs:
                same = False
                break
        if not same:
            for s in range(ns):
                h[h_start + s] = 0
            for o in range(no):
                for s in range(ns):
                    v = Am[o, s]
                    snapshot[a_start + o * ns + s] = v
                    h[h_start + s] += v * np.log(v + threshold)
        a_start += no * ns
        h_start += ns


@njit(**_JIT)
def _outcome_layout(A, B):
    """Where each modality starts in the packed outcomes (o_start) and in the packed h (h_start),
    the total outcomes, and the largest joint state space of a modality or of a factor's parents."""
    M = len(A)
    no_total = 0
    s_max = 1
    h_start = np.zeros(M + 1, np.int64)
    o_start = np.zeros(M + 1, np.int64)
    for m in range(M):
        no_total += A[m].shape[0]
        s_max = max(s_max, A[m].shape[1])
        h_start[m + 1] = h_start[m] + A[m].shape[1]
        o_start[m + 1] = o_start[m] + A[m].shape[0]
    for f in range(len(B)):
        s_max = max(s_max, B[f].shape[1])
    return no_total, s_max, h_start, o_start


@njit(**_JIT)
def _wnorm_masked(p, out):
    """out = W(p) [p > 0] column-wise on a 2-D (rows, columns) array (``maths.py:317-326``)."""
    eps = p.dtype.type(EPS_VAL)
    for j in range(p.shape[1]):
        total = p.dtype.type(0)
        for i in range(p.shape[0]):
            total += p[i, j] + eps
        for i in range(p.shape[0]):
            out[i, j] = (1 / total - 1 / (p[i, j] + eps)) if p[i, j] > 0 else 0


@njit(**_JIT)
def _ln_preferences(C, horizon, no_total):
    """(horizon, sum No) ln(softmax(C_m[:, t]) + 1e-16) (``control.py:619-661``); a one-column C_m tiled."""
    dt = C[0].dtype
    eps = dt.type(EPS_VAL)
    out = np.empty((horizon, no_total), dt)
    for t in range(horizon):
        start = 0
        for m in range(len(C)):
            c = C[m]
            col = 0 if c.shape[1] == 1 else t
            n = c.shape[0]
            seg = out[t, start : start + n]
            for o in range(n):
                seg[o] = c[o, col]
            _softmax_inplace(seg)
            for o in range(n):
                seg[o] = np.log(seg[o] + eps)
            start += n
    return out


@njit(**_JIT)
def policy_values(A, B, C, snapshot, h, E, qs, policies, deps, pA, pB, flags, gamma, G, q_pi):
    """G (negative expected free energy) and q_pi = softmax(gamma G + ln(E + 1e-16)) of each policy,
    as ``control.py:364-468``. For each policy and step t, with x_t the expected states:

        utility    sum_m qo_m . ln(softmax(C_m[:, t]) + 1e-16)            qo_m = A_m (x)_{f in AFL[m]} x_t
        state IG   sum_m w . h_m - obar . ln(obar + 1e-16)                 w = q [q > e^-16], obar = A_m w
        pA IG      - sum_m qo_m . ((W(pA_m) [pA_m > 0]) q)
        pB IG      - sum_f x_t,f . ((W(pB_f) [pB_f > 0])[..., a] (x) x_{t-1, BFL[f]})

    Policies are walked in order keeping the rollout of the previous one: a policy that shares its
    first k steps with the one before it (all of them do, in pymdp's lexicographic order) starts at
    step k, so every distinct prefix is rolled out once; for each new parent, the children of all its
    actions are computed in one pass over B. ``flags`` (4,) bool: utility, state IG, pA IG, pB IG
    (pA / pB are ignored when their flag is off). snapshot, h: see ``refresh_entropy``, called first.
    """
    dt = G.dtype
    eps = dt.type(EPS_VAL)
    M = len(A)
    F = len(B)
    P, H = policies.shape[0], policies.shape[1]
    use_util, use_ig, use_pa, use_pb = flags[0], flags[1], flags[2], flags[3]
    if use_ig:
        refresh_entropy(A, snapshot, h)
    offsets = factor_offsets(B)
    ns_total = offsets[-1]
    no_total, s_max, h_start, o_start = _outcome_layout(A, B)
    lnC = _ln_preferences(C, H, no_total) if use_util else np.empty((H, 0), dt)
    # W(pA) / W(pB) of this call (pymdp recomputes them at every call too)
    WA = []
    if use_pa:
        for m in range(M):
            w = np.empty((pA[m].shape[0], pA[m].shape[1]), dt)
            _wnorm_masked(pA[m], w)
            WA.append(w)
    WB = []
    if use_pb:
        for f in range(F):
            pf = pB[f]
            w = np.empty(pf.shape, dt)
            for a in range(pf.shape[2]):
                wa = np.empty((pf.shape[0], pf.shape[1]), dt)
                _wnorm_masked(np.ascontiguousarray(pf[:, :, a]), wa)
                w[:, :, a] = wa
            WB.append(w)
    # kids[t]: for the current parent at depth t, every factor's next states under each of its actions
    kid_start = np.zeros(F + 1, np.int64)
    for f in range(F):
        kid_start[f + 1] = kid_start[f] + B[f].shape[0] * B[f].shape[2]
    kids = np.empty((H, kid_start[-1]), dt)
    states = np.empty((H + 1, ns_total), dt)
    for f in range(F):
        for i in range(qs[f].shape[0]):
            states[0, offsets[f] + i] = qs[f][i]
    cum = np.zeros(H + 1, dt)
    parent_in = np.empty(s_max, dt)
    qx = np.empty(s_max, dt)
    w = np.empty(s_max, dt)
    tmp_s = np.empty(s_max, dt)
    qo = np.empty(max(1, no_total), dt)
    obar = np.empty(max(1, no_total), dt)
    tmp_o = np.empty(max(1, no_total), dt)
    for p in range(P):
        start = 0
        if p > 0:
            while start < H:
                same = True
                for f in range(F):
                    if policies[p, start, f] != policies[p - 1, start, f]:
                        same = False
                if not same:
                    break
                start += 1
            if start == H:  # a repeated policy
                G[p] = cum[H]
                continue
        for t in range(start, H):
            # the children of this depth's parent, computed when the parent is new (at depth
            # ``start`` the parent is the previous policy's, whose children are already there)
            if t > start or p == 0:
                for f in range(F):
                    n = _kron_into(deps, M + f, states[t], offsets, parent_in)
                    _transition_all(B[f], parent_in[:n], kids[t, kid_start[f] : kid_start[f + 1]])
            value = dt.type(0)
            for f in range(F):
                a = policies[p, t, f]
                ns_f = B[f].shape[0]
                src = kids[t, kid_start[f] + a * ns_f : kid_start[f] + (a + 1) * ns_f]
                states[t + 1, offsets[f] : offsets[f + 1]] = src
            value += _outcome_value(
                A,
                WA,
                lnC[t],
                h,
                h_start,
                o_start,
                deps,
                states[t + 1],
                offsets,
                use_util,
                use_ig,
                use_pa,
                qx,
                w,
                qo,
                obar,
                tmp_o,
            )
            if use_pb:
                for f in range(F):
                    a = policies[p, t, f]
                    n = _kron_into(deps, M + f, states[t], offsets, parent_in)
                    Wf = WB[f]
                    ns_f = Wf.shape[0]
                    for s in range(ns_f):
                        acc = dt.type(0)
                        for j in range(n):
                            acc += Wf[s, j, a] * parent_in[j]
                        tmp_s[s] = acc
                    value -= _dot(states[t + 1, offsets[f] : offsets[f + 1]], tmp_s[:ns_f])
            cum[t + 1] = cum[t] + value
        G[p] = cum[H]
    for p in range(P):
        q_pi[p] = G[p] * gamma + np.log(E[p] + eps)
    _softmax_inplace(q_pi)


@njit(**_JIT)
def choose(q_pi, policies, num_controls, full, stochastic, alpha, p_out):
    """What legacy's ``sample_action`` draws from (``control.py:1017-1066, 1126-1166``), for every
    control factor: ``p_out`` (F, max(P or Nu)) holds the marginal P_f(a) = sum of q_pi over policies
    whose first action on f is a, normalised (or q_pi itself when ``full``), replaced by
    softmax(alpha ln(p + 1e-16)) when ``stochastic``. Returns (F,) picks: the unique entry within 1e-8
    of the maximum (deterministic), or -1 where the caller must draw (a tie, or stochastic)."""
    eps = q_pi.dtype.type(EPS_VAL)
    rows = 1 if full else num_controls.shape[0]
    picks = np.full(num_controls.shape[0], -1, np.int64)
    for f in range(rows):
        n = q_pi.shape[0] if full else num_controls[f]
        p = p_out[f, :n]
        if full:
            p[:] = q_pi
        else:
            p[:] = 0
            for i in range(q_pi.shape[0]):
                p[policies[i, 0, f]] += q_pi[i]
            total = p.dtype.type(0)
            for i in range(n):
                total += p[i]
            for i in range(n):
                p[i] /= total
        if stochastic:
            for i in range(n):
                p[i] = np.log(p[i] + eps) * alpha
            _softmax_inplace(p)
        else:
            top = p.max()
            count = 0
            for i in range(n):
                if abs(p[i] - top) <= TIE_TOL:
                    count += 1
                    if count == 1:
                        picks[f] = i
            if count > 1:
                picks[f] = -1
    return picks


@njit(**_JIT)
def _contract_factor(row, deps, m, f, q, offsets, out, idx, size):
    """out[i] = sum over the joint states s of modality m with s_f = i of row[s] prod_{g != f} q_g(s_g):
    ``spm_dot(A_m[o], qs[A_factor_list[m]], [position of f])`` (``legacy/maths.py``); row flattened over
    the factors listed in ``deps[m]``, the first most significant. idx, size: int64 scratch of at
    least as many entries as factors."""
    k = deps[m, 0]
    total = 1
    pos = -1
    for r in range(k):
        g = deps[m, 1 + r]
        idx[r] = 0
        size[r] = offsets[g + 1] - offsets[g]
        total *= size[r]
        if g == f:
            pos = r
    for i in range(out.shape[0]):
        out[i] = 0
    for j in range(total):
        term = row[j]
        for r in range(k):
            if r != pos:
                term *= q[offsets[deps[m, 1 + r]] + idx[r]]
        out[idx[pos]] += term
        r = k - 1
        while r >= 0:
            idx[r] += 1
            if idx[r] < size[r]:
                break
            idx[r] = 0
            r -= 1


@njit(**_JIT)
def mmp_states(A, B, obs, prev_actions, policies, prior, deps, num_iter, tau, qs_out, F_out):
    """Legacy marginal message passing with gradient descent (``legacy/algos/mmp.py:133-296``,
    ``run_mmp_factorized``) for every policy, each factor's transitions depending on itself only.

    obs (L, M): the outcomes of the inference window; prev_actions (K, F): the actions taken in it
    (stacked before each policy's, as legacy does); policies (P, H, F); prior (1 or P, sum Ns): the
    beliefs before the window (one per policy with ``policy_sep_prior``); deps: modality factor lists.
    For each policy p, over ``num_iter`` sweeps, for t in 0..L+H-1 and each factor f in turn:

        lnA    = sum_{m: f in AFL[m]} ln(spm_dot(A_m[o_tm], q_t, omit f) + 1e-16)     (t < L, else 0)
        lnB_p  = ln(prior_f + 1e-16) (t = 0), else ln(B_f[..., a_{t-1}] q_{t-1} + 1e-16)
        lnB_f  = 0 (t >= L + H - 2), else 0.5 ln(spm_norm(B_f[..., a_t]^T) q_{t+1} + 1e-16)
        c      = 1 if t >= L + H - 2 else 2
        err    = c lnA + lnB_p + lnB_f - c ln(q_t + 1e-16);  q_t <- softmax(ln(q_t + 1e-16) + tau (err - mean err))
        F     += q_t(before) . err / 2   at the first and last t, else q_t(before) . (err - (F - 1) lnA / F) / 2

    Writes qs_out (P, L + H, sum Ns) and F_out (P,).
    """
    dt = qs_out.dtype
    eps = dt.type(EPS_VAL)
    L, M = obs.shape
    K = prev_actions.shape[0]
    P, H = policies.shape[0], policies.shape[1]
    n_factors = len(B)
    infer_len = L + H
    cutoff = L + H - 2
    offsets = factor_offsets(B)
    ns_max = 1
    for f in range(n_factors):
        ns_max = max(ns_max, B[f].shape[0])
    lnA = np.empty(ns_max, dt)
    tmp = np.empty(ns_max, dt)
    idx = np.empty(len(B), np.int64)
    size = np.empty(len(B), np.int64)
    msg = np.empty(ns_max, dt)
    err = np.empty(ns_max, dt)
    for p in range(P):
        q = qs_out[p]
        for t in range(infer_len):
            for f in range(n_factors):
                n = offsets[f + 1] - offsets[f]
                for i in range(n):
                    q[t, offsets[f] + i] = dt.type(1.0) / n
        pr = prior[0] if prior.shape[0] == 1 else prior[p]
        F_total = dt.type(0)
        for _ in range(num_iter):
            F_total = dt.type(0)
            for t in range(infer_len):
                for f in range(n_factors):
                    n = offsets[f + 1] - offsets[f]
                    o = offsets[f]
                    lnA_f = lnA[:n]
                    lnA_f[:] = 0
                    if t < L:
                        for m in range(M):
                            k = deps[m, 0]
                            depends = False
                            for r in range(k):
                                if deps[m, 1 + r] == f:
                                    depends = True
                            if depends:
                                _contract_factor(A[m][obs[t, m]], deps, m, f, q[t], offsets, tmp[:n], idx, size)
                                for i in range(n):
                                    lnA_f[i] += np.log(tmp[i] + eps)
                    Bf = B[f]
                    past = msg[:n]
                    if t == 0:
                        for i in range(n):
                            past[i] = np.log(pr[o + i] + eps)
                    else:
                        row = t - 1
                        a = prev_actions[row, f] if row < K else policies[p, row - K, f]
                        for s in range(n):
                            acc = dt.type(0)
                            for j in range(n):
                                acc += Bf[s, j, a] * q[t - 1, o + j]
                            past[s] = np.log(acc + eps)
                    coeff = dt.type(1) if t >= cutoff else dt.type(2)
                    e = err[:n]
                    for i in range(n):
                        e[i] = coeff * lnA_f[i] + past[i]
                    if t < cutoff:
                        a = prev_actions[t, f] if t < K else policies[p, t - K, f]
                        # spm_norm(b.T)[j, s] = (b[s, j] + eps) / sum_j' (b[s, j'] + eps); message_j = sum_s ... q_{t+1}(s)
                        weights = msg[:n]  # q_{t+1}(s) / sum_j' (b[s, j'] + eps)
                        for s in range(n):
                            total = dt.type(0)
                            for j2 in range(n):
                                total += Bf[s, j2, a] + eps
                            weights[s] = q[t + 1, o + s] / total
                        for j in range(n):
                            acc = dt.type(0)
                            for s in range(n):
                                acc += (Bf[s, j, a] + eps) * weights[s]
                            e[j] += dt.type(0.5) * np.log(acc + eps)
                    mean = dt.type(0)
                    for i in range(n):
                        tmp[i] = np.log(q[t, o + i] + eps)
                        e[i] -= coeff * tmp[i]
                        mean += e[i]
                    mean /= n
                    contribution = dt.type(0)
                    for i in range(n):
                        if t == 0 or t == infer_len - 1:
                            contribution += q[t, o + i] * (dt.type(0.5) * e[i])
                        else:
                            contribution += q[t, o + i] * (
                                dt.type(0.5) * (e[i] - (n_factors - 1) * lnA_f[i] / n_factors)
                            )
                        tmp[i] = tmp[i] + tau * (e[i] - mean)
                    F_total += contribution
                    seg = q[t, o : o + n]
                    seg[:] = tmp[:n]
                    _softmax_inplace(seg)
        F_out[p] = F_total


@njit(**_JIT)
def _outcome_value(
    A, WA, lnC_t, h, h_start, o_start, deps, x, offsets, use_util, use_ig, use_pa, qx, w, qo, obar, tmp_o
):
    """The outcome terms of G at one step with expected states x (packed): for every modality m, with
    q = (x)_{f in AFL[m]} x_f and qo = A_m q,

        utility    qo . lnC_t[m]                       state IG   w . h_m - obar . ln(obar + 1e-16)
        pA IG      - qo . (W(pA_m) [pA_m > 0]) q       w = q [q > e^-16], obar = A_m w

    (``control.py:619-803``). qx, w (max S_m,), qo, obar, tmp_o (sum No,): scratch."""
    dt = x.dtype
    eps = dt.type(EPS_VAL)
    threshold = dt.type(EXP_M16)
    value = dt.type(0)
    for m in range(len(A)):
        Am = A[m]
        no_m = Am.shape[0]
        n = _kron_into(deps, m, x, offsets, qx)
        qo_m = qo[o_start[m] : o_start[m] + no_m]
        big = Am.size >= BLAS_MIN_ENTRIES
        if big:
            _product(Am, qx[:n], qo_m)
        else:
            _matvec(Am, qx[:n], qo_m)
        if use_util:
            value += _dot(qo_m, lnC_t[o_start[m] : o_start[m] + no_m])
        if use_ig:
            kept = 0
            for s in range(n):
                if qx[s] > threshold:
                    w[s] = qx[s]
                    kept += 1
                else:
                    w[s] = 0
            value += _dot(w[:n], h[h_start[m] : h_start[m + 1]])
            expected = qo_m
            if kept < n:
                expected = obar[:no_m]
                if big:
                    _product(Am, w[:n], expected)
                else:
                    _matvec(Am, w[:n], expected)
            for o in range(no_m):
                value -= expected[o] * np.log(expected[o] + eps)
        if use_pa:
            if big:
                _product(WA[m], qx[:n], tmp_o[:no_m])
            else:
                _matvec(WA[m], qx[:n], tmp_o[:no_m])
            value -= _dot(qo_m, tmp_o[:no_m])
    return value


@njit(**_JIT)
def sequence_values(A, C, snapshot, h, E, F, states, deps, offsets, flags, gamma, G, q_pi):
    """G and q_pi = softmax(gamma G - F + ln(E + 1e-16)) of policies whose expected states are given
    (MMP: ``control.py:177-268``, ``update_posterior_policies_full_factorized``): G_p is the sum over
    the T given steps ``states[p]`` (T, sum Ns) of ``_outcome_value``, with ln softmax(C) read at
    steps 0..T-1. F: the policies' free energy; offsets (F + 1,): where each factor starts in a packed
    state. flags: utility, state IG (pymdp's MMP path fails on parameter information gain, so there
    is none here)."""
    dt = G.dtype
    eps = dt.type(EPS_VAL)
    use_util, use_ig = flags[0], flags[1]
    if use_ig:
        refresh_entropy(A, snapshot, h)
    P, T = states.shape[0], states.shape[1]
    no_total, s_max, h_start, o_start = _outcome_layout(A, A)
    lnC = _ln_preferences(C, T, no_total) if use_util else np.empty((T, 0), dt)
    WA = [np.empty((1, 1), dt)]  # no parameter information gain
    qx = np.empty(s_max, dt)
    w = np.empty(s_max, dt)
    qo = np.empty(max(1, no_total), dt)
    obar = np.empty(max(1, no_total), dt)
    tmp_o = np.empty(max(1, no_total), dt)
    for p in range(P):
        value = dt.type(0)
        for t in range(T):
            value += _outcome_value(
                A,
                WA,
                lnC[t],
                h,
                h_start,
                o_start,
                deps,
                states[p, t],
                offsets,
                use_util,
                use_ig,
                False,
                qx,
                w,
                qo,
                obar,
                tmp_o,
            )
        G[p] = value
    for p in range(P):
        q_pi[p] = G[p] * gamma - F[p] + np.log(E[p] + eps)
    _softmax_inplace(q_pi)


#: the recursive search is compiled in each process: numba's disk cache does not reload a
#: self-recursive function correctly (the reloaded code crashes)
_JIT_RECURSIVE = {"cache": False, "fastmath": {"reassoc", "contract"}}


@njit(**_JIT_RECURSIVE)
def _si_search(A, B, lnC0, h, qs, policies, deps, acc_deps, fpi, horizon, thr_policy, thr_state, penalty, n):
    """One node of legacy's sophisticated inference (``control.py:1340-1463``,
    ``sophisticated_inference_search``, called with gamma = 1): every one-step policy's G (utility
    with ln softmax(C[:, 0]) and state information gain) from the beliefs ``qs`` (packed); q_pi =
    softmax(G); below the last level, a policy with q_pi < ``thr_policy`` loses ``penalty``, and every
    other adds, for each joint outcome of probability >= ``thr_state`` (modalities in order, the last
    fastest), that probability times the expected G one level down from the posterior given the
    outcome. Returns (q_pi, G)."""
    dt = qs.dtype
    M = len(A)
    P = policies.shape[0]
    offsets = factor_offsets(B)
    no_total, s_max, h_start, o_start = _outcome_layout(A, B)
    WA = [np.empty((1, 1), dt)]
    qx = np.empty(s_max, dt)
    w = np.empty(s_max, dt)
    qo = np.empty(max(1, no_total), dt)
    obar = np.empty(max(1, no_total), dt)
    tmp_o = np.empty(max(1, no_total), dt)
    parent = np.empty(s_max, dt)
    x_all = np.empty((P, offsets[-1]), dt)
    qo_all = np.empty((P, max(1, no_total)), dt)
    G = np.zeros(P, dt)
    for p in range(P):
        x = x_all[p]
        for f in range(len(B)):
            k = _kron_into(deps, M + f, qs, offsets, parent)
            Bf = B[f]
            a = policies[p, 0, f]
            for s in range(Bf.shape[0]):
                acc = dt.type(0)
                for j in range(k):
                    acc += Bf[s, j, a] * parent[j]
                x[offsets[f] + s] = acc
        G[p] += _outcome_value(
            A, WA, lnC0, h, h_start, o_start, deps, x, offsets, True, True, False, qx, w, qo, obar, tmp_o
        )
        qo_all[p, :no_total] = qo[:no_total]
    q_pi = G.copy()
    _softmax_inplace(q_pi)
    if n < horizon - 1:
        eps = dt.type(EPS_VAL)
        log_prior = np.empty(offsets[-1], dt)
        posterior = np.empty(offsets[-1], dt)
        outcome = np.zeros(M, np.int64)
        for p in range(P):
            if q_pi[p] < thr_policy:
                G[p] -= penalty
                continue
            for i in range(offsets[-1]):
                log_prior[i] = np.log(x_all[p, i] + eps)
            outcome[:] = 0
            while True:
                prob = 1.0
                for m in range(M):
                    prob *= qo_all[p, o_start[m] + outcome[m]]
                if prob >= thr_state:
                    _posterior(A, outcome, log_prior, offsets, deps, acc_deps, fpi, posterior)
                    q_next, G_next = _si_search(
                        A,
                        B,
                        lnC0,
                        h,
                        posterior.copy(),
                        policies,
                        deps,
                        acc_deps,
                        fpi,
                        horizon,
                        thr_policy,
                        thr_state,
                        penalty,
                        n + 1,
                    )
                    G[p] += _dot(q_next, G_next) * prob
                m = M - 1
                while m >= 0:
                    outcome[m] += 1
                    if outcome[m] < A[m].shape[0]:
                        break
                    outcome[m] = 0
                    m -= 1
                if m < 0:
                    break
    q_pi = G.copy()
    _softmax_inplace(q_pi)
    return q_pi, G


@njit(**_JIT_RECURSIVE)
def sophisticated(
    A, B, C, snapshot, h, qs, policies, deps, acc_deps, fpi, horizon, thr_policy, thr_state, penalty, G, q_pi
):
    """Legacy sophisticated inference from the posterior ``qs`` (packed) over one-step ``policies``
    (P, 1, F), to depth ``horizon``: see ``_si_search``. Writes G and q_pi."""
    refresh_entropy(A, snapshot, h)
    no_total = 0
    for m in range(len(A)):
        no_total += A[m].shape[0]
    lnC0 = _ln_preferences(C, 1, no_total)[0]
    q, g = _si_search(A, B, lnC0, h, qs, policies, deps, acc_deps, fpi, horizon, thr_policy, thr_state, penalty, 0)
    G[:] = g
    q_pi[:] = q
