"""pymdp's legacy ``Agent`` on compiled numba kernels, float64.

Same methods, attributes and numbers as ``pymdp.legacy.agent.Agent`` (``pymdp-legacy-spec.md``):
``infer_states``, ``infer_policies``, ``sample_action`` (numpy's global RNG, as legacy),
``update_A``, ``update_B``.

How it is fast:

* The model is held packed, in the layout the kernels read row by row: ``A[m]`` as an
  ``(No_m, S_m)`` matrix (``S_m`` = product of the states of its factors), ``B[f]`` as
  ``(Nu_f, Ns_f, S_f)`` (one contiguous transition matrix per action). The legacy-layout
  ``agent.A`` / ``agent.B`` / ``agent.pA`` / ``agent.pB`` are views of these arrays. Everything a
  step would recompute from the model (``h = sum_o A ln(A + e^-16)``, ``ln softmax(C)``,
  ``ln(E + 1e-16)``, the masked ``W(pA)`` and ``W(pB)``) is computed once, and again after learning
  or an assignment to ``A``, ``B``, ``pA``, ``pB``, ``C``, ``D`` or ``E`` (writing into these arrays
  in place bypasses that refresh).
* Policies are evaluated level by level over the policy tree: the policies are all
  ``U^H`` sequences of joint actions (``U = prod Nu_f``) in lexicographic order, so the policies that
  share their first ``tau`` joint actions share the rollout up to ``tau``. Level ``tau`` holds the
  ``U^tau`` distinct prefixes; node ``k`` has parent ``k // U`` and last joint action ``k % U``. Each
  node's expected states and its contribution to ``G`` are computed once, and ``G`` of a policy is
  the sum along its path: ``U^1 + ... + U^H`` node evaluations instead of ``H U^H``.
* One hidden-state factor (any number of modalities, any horizon) runs entirely in two compiled
  calls per step (``_posterior_single``, ``_policies_single``), each with one array argument: the
  whole model, the current posterior and the flags live in one flat buffer (``_single_layout``), all
  modalities stacked into one ``(sum No, Ns)`` matrix. Several factors run the same tree with the
  joint contractions in numpy (exact, vectorised over all nodes of a level) and the fixed-point
  iteration in the compiled ``_fpi_factorized``.
* One factor: ``infer_states`` also evaluates the policies in the same compiled call
  (``_step_single``), and ``infer_policies`` returns that result -- unless the model, a setting or
  ``qs`` changed in between (learning before ``infer_policies``, an assignment), in which case it
  evaluates again and the agent stops evaluating ahead; it also stops when ``infer_states`` is
  called twice without ``infer_policies``. Outputs are allocated by numpy and filled by the kernels.

Kernels are compiled with ``fastmath={"reassoc", "contract"}`` so that their dot products
vectorise; results differ from pymdp's by rounding only (measured ~1e-15, gate tolerance 1e-10).
``warmup()`` compiles (or loads from the on-disk cache) every kernel on tiny models and returns
the seconds it took.
"""

import time

import numpy as np
from numba import njit

from pymdpbench.engines.base import EPS_VAL, LegacyAgent, normalise, obj_array, select_highest

#: ``spm_MDP_G``'s state threshold and likelihood-log stabiliser, ``legacy/maths.py:547,560``.
EXP_M16 = float(np.exp(-16.0))
#: Legacy's default ``inference_params`` (``legacy/agent.py:926-927``); they are always the defaults
#: at construction (legacy ignores the keyword) and can be changed by assigning ``agent.inference_params``.
FPI_DEFAULTS = {"num_iter": 10, "dF": 1.0, "dF_tol": 0.001, "compute_vfe": True}
#: One factor: from this many outcome entries in the policy tree (nodes x sum No) on, the logs of
#: the info gain are taken by numpy between two compiled calls instead of in the loop -- but only
#: where numpy's log is vectorised (AVX-512: ~1.5 ns per log against ~9 ns for a scalar log in a numba
#: loop; this llvmlite has no SVML). On AVX2 numpy's float64 log is scalar too and this gains nothing.
DEFER_LOGS_FROM = 256


def _numpy_log_is_vectorised():
    """Whether numpy dispatches its float64 log to AVX-512 code on this CPU."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__
    return bool(__cpu_features__.get("AVX512F"))


NUMPY_SIMD_LOG = _numpy_log_is_vectorised()

#: Elements per chunk of the joint (nodes x joint states) arrays of the multi-factor path.
CHUNK_ELEMENTS = 1 << 20

_JIT = {"cache": True, "fastmath": {"reassoc", "contract"}}


# --------------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------------

@njit(**_JIT)
def _matvec(M, x, out):
    """out[i] = sum_j M[i, j] x[j].  M (n, k) C-contiguous rows, x (k,), out (n,).

    Four rows at a time: four independent (vectorised) reductions share each load of x. The sums
    start from 0 so that the j loop has no peeled first iteration (cleaner vectorisation at small k).
    """
    n, k = M.shape
    zero = M.dtype.type(0)
    i = 0
    while i + 4 <= n:
        a0 = zero
        a1 = zero
        a2 = zero
        a3 = zero
        for j in range(k):
            xj = x[j]
            a0 += M[i, j] * xj
            a1 += M[i + 1, j] * xj
            a2 += M[i + 2, j] * xj
            a3 += M[i + 3, j] * xj
        out[i] = a0
        out[i + 1] = a1
        out[i + 2] = a2
        out[i + 3] = a3
        i += 4
    while i < n:
        acc = zero
        for j in range(k):
            acc += M[i, j] * x[j]
        out[i] = acc
        i += 1


@njit(**_JIT)
def _dot(x, y):
    """sum_i x[i] y[i] for two equally long vectors."""
    acc = x.dtype.type(0)
    for i in range(x.shape[0]):
        acc += x[i] * y[i]
    return acc


@njit(**_JIT)
def _softmax_inplace(x):
    """x <- exp(x - max x) / sum exp(x - max x)  (``legacy/maths.py:363-371``); x (n,)."""
    top = x.max()
    total = x.dtype.type(0)
    for i in range(x.shape[0]):
        x[i] = np.exp(x[i] - top)
        total += x[i]
    for i in range(x.shape[0]):
        x[i] /= total


# One-factor models live in ONE flat buffer, so that a step is two compiled calls with one array
# argument each (a numba call costs ~0.3 us per array argument). Header (floats; small integers):
_NS, _NO, _NU, _HOR, _NMOD, _GAMMA, _ALPHA, _UTIL, _IG, _PA, _PB, _FULL, _STOCH, _PICK, _HAS_WA, _HAS_WB = range(16)
#: header length before the per-modality outcome counts No_m.
_HEADER = 16


@njit(cache=True)
def _single_layout(ns, no, nu, horizon, nmod, has_wa, has_wb):
    """Offsets of the regions of a one-factor buffer, in order:
    qs (Ns) | A (sum No, Ns) | h (Ns) | WA (sum No, Ns) if has_wa | B (Nu, Ns, Ns) | WB (Nu, Ns, Ns) if has_wb
    | D (Ns) | lnC (H, sum No) | lnE (P) | draw (max(P, Nu)) | work | end.  ``B[a]`` is ``B[:, :, a]`` (rows =
    next state): every product is a row-wise dot (``_matvec``), which measured faster than column-wise axpy.
    ``work`` is the kernels' scratch (see ``_evaluate_tree``), so that a step allocates only its outputs.
    """
    qs = _HEADER + nmod
    a = qs + ns
    h = a + no * ns
    wa = h + ns
    b = wa + (no * ns if has_wa else 0)
    wb = b + nu * ns * ns
    d = wb + (nu * ns * ns if has_wb else 0)
    lnc = d + ns
    lne = lnc + horizon * no
    num_policies = nu ** horizon
    draw = lne + num_policies
    work = draw + max(num_policies, nu)
    nodes = 0
    level = 1
    for tau in range(horizon):
        level *= nu
        nodes += level
    end = work + 3 * no + 2 * ns + nodes * (ns + 1)
    return qs, a, h, wa, b, wb, d, lnc, lne, draw, work, end


@njit(**_JIT)
def _regions(buf):
    """``_single_layout`` of the buffer, from its header."""
    return _single_layout(int(buf[_NS]), int(buf[_NO]), int(buf[_NU]), int(buf[_HOR]), int(buf[_NMOD]),
                          buf[_HAS_WA] > 0, buf[_HAS_WB] > 0)


@njit(**_JIT)
def _posterior_single(buf, obs, action, q):
    """Posterior of a one-factor model: q = softmax(sum_m ln(A_m[o_m, :] + 1e-16) + ln(prior + 1e-16)).

    One shot, as legacy's one-factor branch (``legacy/algos/fpi.py:248-255``). The prior is D when
    ``action < 0``, else ``B[:, :, action] @ qs`` with the previous posterior from the buffer.
    buf: the one-factor buffer (see ``_single_layout``); obs: tuple of M outcome indices.
    Writes q (Ns,) and the buffer's qs region. (Outputs are allocated by the caller: a numba-made
    array costs ~1 us to hand back to Python, numpy's ``np.empty`` a fraction of that.)
    """
    ns, no = int(buf[_NS]), int(buf[_NO])
    r_qs, r_a, r_h, r_wa, r_b, r_wb, r_d, r_lnc, r_lne, r_draw, r_work, r_end = _regions(buf)
    eps = buf.dtype.type(EPS_VAL)
    qs = buf[r_qs:r_qs + ns]
    if action >= 0:
        prior = buf[r_work:r_work + ns]
        start = r_b + action * ns * ns
        _matvec(buf[start:start + ns * ns].reshape(ns, ns), qs, prior)
    else:
        prior = buf[r_d:r_d + ns]
    q[:] = 0
    row = 0
    for m in range(len(obs)):
        start = r_a + (row + obs[m]) * ns
        for s in range(ns):
            q[s] += np.log(buf[start + s] + eps)
        row += int(buf[_HEADER + m])
    for s in range(ns):
        q[s] += np.log(prior[s] + eps)
    _softmax_inplace(q)
    qs[:] = q


@njit(**_JIT)
def _evaluate_tree(buf, obar_out):
    """Contribution to G of every node of the policy tree of a one-factor model, level by level.

    Node k of level tau (0-based) is reached by joint action ``a = k % U`` from node ``k // U`` of
    the level above (level -1 is the posterior qs). For a node with predicted states
    ``x = B_a x_parent`` and outcomes ``qo = A x`` (all modalities stacked), its contribution is
        utility    qo . lnC[tau]                          lnC = ln(softmax(C) + 1e-16)
        state IG   w . h - obar . ln(obar + 1e-16)        w = x [x > e^-16], obar = A w,
                                                          h = sum_m sum_o A ln(A + e^-16)
        pA IG      - qo . (WA x)                          WA = W(pA) [pA > 0]
        pB IG      - x . (WB_a x_parent)                  WB = W(pB) [pB > 0]
    (``legacy/control.py:364-468``; flags from the buffer's header).
    buf: the one-factor buffer (see ``_single_layout``). obar_out: (0, No) to evaluate
    ``obar . ln(obar + 1e-16)`` here, or (nodes, No) to receive obar and leave that term to the
    caller (numpy's vectorised log is ~5x faster than a scalar log in a loop).
    Returns the contributions (nodes,), levels one after another (level tau starts at U + ... + U^tau).
    Scratch (the nodes' states, qo, obar, ...) lives in the buffer's work region.
    """
    ns, no, nu, horizon = int(buf[_NS]), int(buf[_NO]), int(buf[_NU]), int(buf[_HOR])
    use_util, use_ig, use_pa, use_pb = buf[_UTIL] > 0, buf[_IG] > 0, buf[_PA] > 0, buf[_PB] > 0
    defer = obar_out.shape[0] > 0
    r_qs, r_a, r_h, r_wa, r_b, r_wb, r_d, r_lnc, r_lne, r_draw, r_work, r_end = _regions(buf)
    dtype = buf.dtype
    eps = dtype.type(EPS_VAL)
    threshold = dtype.type(EXP_M16)
    zero = dtype.type(0)
    A = buf[r_a:r_a + no * ns].reshape(no, ns)
    h = buf[r_h:r_h + ns]
    no_wa = no if buf[_HAS_WA] > 0 else 0
    nu_wb = nu if buf[_HAS_WB] > 0 else 0
    WA = buf[r_wa:r_wa + no_wa * ns].reshape(no_wa, ns)
    B = buf[r_b:r_b + nu * ns * ns].reshape(nu, ns, ns)
    WB = buf[r_wb:r_wb + nu_wb * ns * ns].reshape(nu_wb, ns, ns)
    lnC = buf[r_lnc:r_lnc + horizon * no].reshape(horizon, no)
    work = buf[r_work:r_end]
    qo = work[:no]
    obar = work[no:2 * no]
    tmp_o = work[2 * no:3 * no]
    tmp_s = work[3 * no:3 * no + ns]
    w = work[3 * no + ns:3 * no + 2 * ns]
    values, tree_states = _node_scratch(buf)
    parents = buf[r_qs:r_qs + ns].reshape(1, ns)
    start = 0
    n = 1
    for tau in range(horizon):
        n *= nu
        states = tree_states[start * ns:(start + n) * ns].reshape(n, ns)
        for k in range(n):
            p = k // nu
            a = k % nu
            x = states[k]
            _matvec(B[a], parents[p], x)
            _matvec(A, x, qo)
            value = zero
            if use_util:
                value += _dot(qo, lnC[tau])
            if use_ig:
                kept = 0
                for s in range(ns):
                    keep = x[s] > threshold
                    w[s] = x[s] if keep else zero
                    kept += keep
                value += _dot(w, h)
                expected = qo
                if kept < ns:
                    _matvec(A, w, obar)
                    expected = obar
                if defer:
                    obar_out[start + k] = expected
                else:
                    for o in range(no):
                        value -= expected[o] * np.log(expected[o] + eps)
            if use_pa:
                _matvec(WA, x, tmp_o)
                value -= _dot(qo, tmp_o)
            if use_pb:
                _matvec(WB[a], parents[p], tmp_s)
                value -= _dot(x, tmp_s)
            values[start + k] = value
        parents = states
        start += n
    return values


@njit(**_JIT)
def _node_scratch(buf):
    """Views of the work region: the nodes' contributions (nodes,) and their states (nodes * Ns,)."""
    ns, no = int(buf[_NS]), int(buf[_NO])
    r_work, r_end = _regions(buf)[10:12]
    nodes_all = buf[r_work + 3 * no + 2 * ns:r_end]
    total = nodes_all.shape[0] // (ns + 1)
    return nodes_all[:total], nodes_all[total:]


@njit(**_JIT)
def _finish_policies(buf, values, out):
    """G of each policy = sum of the node contributions on its path (accumulated level by level, in
    place in ``values``), then ``_policy_posterior``. values: from ``_evaluate_tree``;
    out (2, U^H): receives G (row 0) and q_pi (row 1)."""
    nu, horizon = int(buf[_NU]), int(buf[_HOR])
    start, n = 0, nu
    for tau in range(1, horizon):
        for k in range(n * nu):
            values[start + n + k] += values[start + k // nu]
        start += n
        n *= nu
    G = out[0]
    G[:] = values[start:start + n]
    r_lne, r_draw, r_work = _regions(buf)[8:11]
    _policy_posterior(G, buf[r_lne:r_lne + n], buf, out[1], buf[r_draw:r_work])


@njit(**_JIT)
def _policies_single(buf, out):
    """G and q_pi (into out (2, U^H)) of every policy of a one-factor model: ``_evaluate_tree`` then
    ``_finish_policies``."""
    values = _evaluate_tree(buf, buf[:0].reshape(0, int(buf[_NO])))
    _finish_policies(buf, values, out)


@njit(**_JIT)
def _step_single(buf, obs, action, out):
    """``_posterior_single`` then ``_policies_single`` in one call; out (Ns + 2 U^H,) receives q, G, q_pi."""
    ns = int(buf[_NS])
    _posterior_single(buf, obs, action, out[:ns])
    _policies_single(buf, out[ns:].reshape(2, -1))


@njit(**_JIT)
def _tree_outcomes(buf, obar):
    """First half of ``_policies_single`` for large trees: the contributions without the
    ``obar . ln(obar + 1e-16)`` term (kept in the buffer) and obar (nodes, No) into ``obar``."""
    _evaluate_tree(buf, obar)


@njit(**_JIT)
def _policies_from_outcomes(buf, obar, log_obar, out):
    """Second half: contributions -= sum_o obar ln(obar + 1e-16) (log_obar given), then ``_finish_policies``."""
    values = _node_scratch(buf)[0]
    for k in range(values.shape[0]):
        values[k] -= _dot(obar[k], log_obar[k])
    _finish_policies(buf, values, out)


@njit(**_JIT)
def _policy_posterior(G, lnE, header, q_pi, draw):
    """q_pi = softmax(gamma G + lnE), then what ``sample_action`` draws from.

    header: the buffer (its _GAMMA, _ALPHA, _NU, _FULL, _STOCH entries are read and _PICK written).
    ``p`` (written to the front of ``draw``) is q_pi (full) or the marginal over first joint actions
    P(a) = sum_{pi: pi_0 = a} q_pi, accumulated in policy order and normalised (marginal); when
    stochastic it is replaced by softmax(alpha ln(p + 1e-16)). ``header[_PICK]`` is the index of the
    unique entry of p within 1e-8 of its maximum (deterministic), or -1 when there is a tie or the
    choice is stochastic.
    """
    dtype = G.dtype
    gamma = dtype.type(header[_GAMMA])
    alpha = dtype.type(header[_ALPHA])
    nu = int(header[_NU])
    for i in range(G.shape[0]):
        q_pi[i] = G[i] * gamma + lnE[i]
    _softmax_inplace(q_pi)
    if header[_FULL] > 0:
        p = draw[:q_pi.shape[0]]
        p[:] = q_pi
    else:
        p = draw[:nu]
        p[:] = 0
        block = G.shape[0] // nu
        for i in range(G.shape[0]):
            p[i // block] += q_pi[i]
        p /= p.sum()
    pick = -1
    if header[_STOCH] > 0:
        eps = dtype.type(EPS_VAL)
        for i in range(p.shape[0]):
            p[i] = np.log(p[i] + eps) * alpha
        _softmax_inplace(p)
    else:
        top = p.max()
        count = 0
        for i in range(p.shape[0]):
            if abs(p[i] - top) <= 1e-8:
                count += 1
                if count == 1:
                    pick = i
        if count > 1:
            pick = -1
    header[_PICK] = pick


@njit(**_JIT)
def _contract_loglik(ll, layout, q, q_offset, out):
    """Expected log-likelihood per factor: out[f] += sum_m sum_{s\\f} LL_m(s) prod_{g != f} q_g(s_g).

    Also returns the accuracy sum_m sum_s LL_m(s) prod_g q_g(s_g).
    ll: all LL_m flattened (C order over the modality's factors) and concatenated; layout (M, 2 + F)
    int rows (offset into ll, number of factors k, the k factor indices); q, out (sum Ns,) packed
    per factor at q_offset (F + 1,).
    """
    k_max = layout.shape[1] - 2
    idx = np.zeros(k_max, np.int64)
    base = np.zeros(k_max, np.int64)
    size = np.zeros(k_max, np.int64)
    vals = np.empty(k_max, q.dtype)
    accuracy = q.dtype.type(0)
    for m in range(layout.shape[0]):
        offset, k = layout[m, 0], layout[m, 1]
        total = 1
        for r in range(k):
            f = layout[m, 2 + r]
            base[r] = q_offset[f]
            size[r] = q_offset[f + 1] - q_offset[f]
            idx[r] = 0
            total *= size[r]
        for j in range(total):
            v = ll[offset + j]
            joint = v
            for r in range(k):
                vals[r] = q[base[r] + idx[r]]
                joint *= vals[r]
            accuracy += joint
            for r in range(k):
                term = v
                for r2 in range(k):
                    if r2 != r:
                        term *= vals[r2]
                out[base[r] + idx[r]] += term
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
    """sum_f q_f . ln(q_f + 1e-16) - q_f . ln prior_f over the packed factors (VFE without accuracy)."""
    eps = q.dtype.type(EPS_VAL)
    total = q.dtype.type(0)
    for i in range(q.shape[0]):
        total += q[i] * np.log(q[i] + eps) - q[i] * log_prior[i]
    return total


@njit(**_JIT)
def _fpi_factorized(ll, layout, acc_ll, acc_layout, log_prior, q_offset, params):
    """Legacy's parallel (Jacobi) fixed-point iteration for several factors (``legacy/algos/fpi.py:263-319``).

        q^0 = uniform;  prev = F(q^0) WITHOUT accuracy (legacy quirk);  dF = params[1]
        while k < num_iter and (dF >= dF_tol or not compute_vfe):
            q_f <- softmax(sum_m E_{q_{-f}}[LL_m] + ln prior_f)    for every f, from the old q
            F = sum_f q_f.ln(q_f + 1e-16) - q_f.ln prior_f - accuracy;  dF = |prev - F|;  prev = F
    ll/layout: the per-modality log-likelihoods (see ``_contract_loglik``); acc_ll/acc_layout: the
    log-likelihood whose expectation is the VFE accuracy (the same, or legacy's joint tensor);
    log_prior (sum Ns,) packed at q_offset (F + 1,); params = (num_iter, dF, dF_tol, compute_vfe).
    Returns q (sum Ns,).
    """
    dtype = log_prior.dtype
    num_factors = q_offset.shape[0] - 1
    q = np.empty_like(log_prior)
    for f in range(num_factors):
        n = q_offset[f + 1] - q_offset[f]
        for i in range(q_offset[f], q_offset[f + 1]):
            q[i] = dtype.type(1.0) / n
    num_iter, dF, tol, compute_vfe = int(params[0]), params[1], params[2], params[3] > 0
    prev = _neg_entropy_cross(q, log_prior)
    scratch = np.zeros_like(q)
    it = 0
    while it < num_iter and (dF >= tol or not compute_vfe):
        qL = np.zeros_like(q)
        _contract_loglik(ll, layout, q, q_offset, qL)
        for f in range(num_factors):
            seg = qL[q_offset[f]:q_offset[f + 1]]
            for i in range(seg.shape[0]):
                seg[i] += log_prior[q_offset[f] + i]
            _softmax_inplace(seg)
        q = qL
        if compute_vfe:
            scratch[:] = 0
            vfe = _neg_entropy_cross(q, log_prior) - _contract_loglik(acc_ll, acc_layout, q, q_offset, scratch)
            dF = abs(prev - vfe)
            prev = vfe
        it += 1
    return q


# --------------------------------------------------------------------------------------------
# numpy helpers of the multi-factor path
# --------------------------------------------------------------------------------------------

def _kron_rows(rows):
    """Row-wise outer product of (n, k_i) arrays, flattened in C order: (n, prod k_i). ``spm_cross`` order."""
    out = rows[0]
    for r in rows[1:]:
        out = (out[:, :, None] * r[:, None, :]).reshape(out.shape[0], -1)
    return out


def _kron(vectors):
    """Outer product of vectors flattened in C order (``spm_cross``)."""
    out = vectors[0]
    for v in vectors[1:]:
        out = np.multiply.outer(out, v).ravel()
    return out


def _wnorm_masked(p):
    """W(P) [P > 0] with W(P) = 1 / sum_0 (P + 1e-16) - 1 / (P + 1e-16)  (``legacy/maths.py:317-326``)."""
    stabilised = p + EPS_VAL
    return np.where(p > 0, 1.0 / stabilised.sum(axis=0) - 1.0 / stabilised, 0.0).astype(p.dtype)


# --------------------------------------------------------------------------------------------
# the agent
# --------------------------------------------------------------------------------------------

class _HeaderField:
    """An agent attribute that the kernels read from the one-factor buffer's header: setting it
    (legacy reads these at call time, so users may change them between steps) updates the header.
    There is no ``__get__``: reads find the value in the instance ``__dict__`` at C speed."""

    def __init__(self, index, encode):
        self.index, self.encode = index, encode

    def __set_name__(self, owner, name):
        self.name = name

    def __set__(self, agent, value):
        agent.__dict__[self.name] = value
        if agent.__dict__.get("_buf") is not None:
            agent._buf[self.index] = self.encode(value)
        agent._invalidate()


class Agent(LegacyAgent):
    """Drop-in for ``pymdp.legacy.agent.Agent`` on numba kernels; see the module docstring."""

    #: dtype of beliefs, model arrays and all kernel arithmetic.
    dtype = np.float64
    #: gate tolerance: pymdp's legacy agent reproduces itself to ~1e-13; these kernels differ from it by
    #: summation order only (measured ~1e-14 on q_pi).
    tolerance = 1e-10
    #: one factor, large trees: take the info-gain logs with numpy (see ``DEFER_LOGS_FROM``).
    defer_logs = NUMPY_SIMD_LOG

    gamma = _HeaderField(_GAMMA, float)
    alpha = _HeaderField(_ALPHA, float)
    use_utility = _HeaderField(_UTIL, bool)
    use_states_info_gain = _HeaderField(_IG, bool)
    sampling_mode = _HeaderField(_FULL, lambda mode: mode == "full")
    action_selection = _HeaderField(_STOCH, lambda selection: selection == "stochastic")

    _MODEL_FIELDS = ("A", "B", "pA", "pB", "C", "D", "E")

    def __init__(self, A, B, C=None, D=None, **kwargs):
        self.__dict__.update(_packed=False, _buf=None, _raw={})
        super().__init__(A, B, C=C, D=D, **kwargs)
        self.inference_params = dict(FPI_DEFAULTS)
        self._num_joint = int(np.prod(self.num_controls))
        self._joint_actions = construct_joint_actions(self.num_controls)
        self._single = self.num_factors == 1
        self._q_offset = np.concatenate([[0], np.cumsum(self.num_states)]).astype(np.int64)
        self._A_sizes = [int(np.prod([self.num_states[f] for f in fl])) for fl in self.A_factor_list]
        self._B_sizes = [int(np.prod([self.num_states[g] for g in fl])) for fl in self.B_factor_list]
        self._unsorted_A = any(list(fl) != sorted(fl) for fl in self.A_factor_list)
        if self._single:
            first = self.policies[:, 0, 0]
            self._first_action = {"full": first.tolist(), "marginal": list(range(self._num_joint))}
            self._action_rows = {mode: np.array(a, dtype=float)[:, None] for mode, a in self._first_action.items()}
        raw = self.__dict__.pop("_raw")
        self._allocate(raw["pA"] is not None, raw["pB"] is not None)
        self._packed = True
        for name in self._MODEL_FIELDS:
            setattr(self, name, raw[name])
        self._qs_own = self._q_pi_own = self._action_own = self._pending = None
        self._action_index = -1
        self._speculate = True

    def _invalidate(self):
        """The model or a setting changed: a policy evaluation made ahead of ``infer_policies`` is stale."""
        self.__dict__["_version"] = self.__dict__.get("_version", 0) + 1

    # ---- model storage: packed arrays, legacy-layout views -------------------------------

    def _allocate(self, has_wa, has_wb):
        """Packed storage: ``_A2[m]`` (No_m, S_m), ``_Bt[f]`` (Nu_f, Ns_f, S_f), ``_h[m]`` (S_m,) and,
        with pA / pB, ``_WA2`` / ``_WBt`` shaped alike. One factor: all of them (and D, lnC, lnE, the
        current qs and the flags) are views of the flat buffer ``_buf`` read by the kernels."""
        dt, No = self.dtype, self.num_obs
        self._pA2 = self._pBt = None
        if not self._single:
            self._buf = None
            self._A2 = [np.zeros((n, s), dt) for n, s in zip(No, self._A_sizes)]
            self._Bt = [np.zeros((nu, ns, s), dt)
                        for nu, ns, s in zip(self.num_controls, self.num_states, self._B_sizes)]
            self._h = [np.zeros(s, dt) for s in self._A_sizes]
            self._WA2 = [np.zeros_like(a) for a in self._A2] if has_wa else None
            self._WBt = [np.zeros_like(b) for b in self._Bt] if has_wb else None
            return
        ns, nu, no, H, M = self.num_states[0], self.num_controls[0], sum(No), self.policy_len, len(No)
        r_qs, r_a, r_h, r_wa, r_b, r_wb, r_d, r_lnc, r_lne, r_draw, r_work, r_end = _single_layout(
            ns, no, nu, H, M, has_wa, has_wb)
        buf = np.zeros(r_end, dt)
        buf[[_NS, _NO, _NU, _HOR, _NMOD, _HAS_WA, _HAS_WB]] = [ns, no, nu, H, M, has_wa, has_wb]
        buf[_HEADER:_HEADER + M] = No
        rows = np.concatenate([[0], np.cumsum(No)])
        A_all = buf[r_a:r_h].reshape(no, ns)
        self._A2 = [A_all[rows[m]:rows[m + 1]] for m in range(M)]
        self._h_all = buf[r_h:r_h + ns]
        self._h = [np.zeros(ns, dt) for _ in range(M)]
        self._WA2 = [buf[r_wa:r_b].reshape(no, ns)[rows[m]:rows[m + 1]] for m in range(M)] if has_wa else None
        self._Bt = [buf[r_b:r_b + nu * ns * ns].reshape(nu, ns, ns)]
        self._WBt = [buf[r_wb:r_d].reshape(nu, ns, ns)] if has_wb else None
        self._qs_region = buf[r_qs:r_a]
        self._D_region = buf[r_d:r_lnc]
        self._lnC_region = buf[r_lnc:r_lne].reshape(H, no)
        self._lnE_region = buf[r_lne:r_draw]
        self._draw_region = buf[r_draw:r_work]
        self._buf = buf
        nodes = sum(nu ** (t + 1) for t in range(H))
        self._defer_logs = self.defer_logs and nodes * no >= DEFER_LOGS_FROM
        self._log_scratch = np.empty((2, nodes, no), dt) if self._defer_logs else None
        self._ns, self._num_policies = ns, nu ** H
        for name in ("gamma", "alpha", "use_utility", "use_states_info_gain", "sampling_mode", "action_selection"):
            setattr(self, name, getattr(self, name))

    def _reallocate(self, has_wa, has_wb):
        """New storage (W(pA) / W(pB) appear or disappear), keeping the model."""
        copies = {name: getattr(self, name) for name in self._MODEL_FIELDS}
        copies = {name: value if name == "E" or value is None else obj_array([np.array(x) for x in value])
                  for name, value in copies.items()}
        self._allocate(has_wa, has_wb)
        for name in ("A", "B", "C", "D", "E"):
            setattr(self, name, copies[name])
        if has_wa and copies["pA"] is not None:
            self._set_pA(copies["pA"])
        if has_wb and copies["pB"] is not None:
            self._set_pB(copies["pB"])
        self._qs_own = None

    def _A_view(self, m, packed):
        shape = (self.num_obs[m], *(self.num_states[f] for f in self.A_factor_list[m]))
        return packed.reshape(shape)

    def _B_view(self, f, packed):
        shape = (self.num_controls[f], self.num_states[f], *(self.num_states[g] for g in self.B_factor_list[f]))
        return np.moveaxis(packed.reshape(shape), 0, -1)

    def _store(self, name, value):
        """Before packing, keep the value for ``__init__``; True when the packed storage must be set."""
        if not self._packed:
            self._raw[name] = value
            return False
        return True

    @property
    def A(self):
        if not self._packed:
            return self._raw["A"]
        return obj_array([self._A_view(m, a) for m, a in enumerate(self._A2)])

    @A.setter
    def A(self, value):
        if self._store("A", value):
            for m, a in enumerate(value):
                self._A_view(m, self._A2[m])[...] = a
            self._refresh_A()

    @property
    def B(self):
        if not self._packed:
            return self._raw["B"]
        return obj_array([self._B_view(f, b) for f, b in enumerate(self._Bt)])

    @B.setter
    def B(self, value):
        if self._store("B", value):
            for f, b in enumerate(value):
                self._B_view(f, self._Bt[f])[...] = b
            self._refresh_B()

    @property
    def pA(self):
        if not self._packed:
            return self._raw.get("pA")
        if self._pA2 is None:
            return None
        return obj_array([self._A_view(m, p) for m, p in enumerate(self._pA2)])

    @pA.setter
    def pA(self, value):
        if self._store("pA", value):
            if (value is not None) != (self._WA2 is not None):
                self._reallocate(value is not None, self._WBt is not None)
            self._set_pA(value)

    def _set_pA(self, value):
        self._pA2 = None if value is None else [
            np.ascontiguousarray(np.asarray(p, dtype=self.dtype).reshape(a.shape)) for p, a in zip(value, self._A2)]
        self._refresh_A()

    @property
    def pB(self):
        if not self._packed:
            return self._raw.get("pB")
        if self._pBt is None:
            return None
        return obj_array([self._B_view(f, p) for f, p in enumerate(self._pBt)])

    @pB.setter
    def pB(self, value):
        if self._store("pB", value):
            if (value is not None) != (self._WBt is not None):
                self._reallocate(self._WA2 is not None, value is not None)
            self._set_pB(value)

    def _set_pB(self, value):
        self._pBt = None
        if value is not None:
            self._pBt = [np.empty_like(b) for b in self._Bt]
            for f, p in enumerate(value):
                self._B_view(f, self._pBt[f])[...] = p
        self._refresh_B()

    @property
    def use_param_info_gain(self):
        return self.__dict__["use_param_info_gain"]

    @use_param_info_gain.setter
    def use_param_info_gain(self, value):
        self.__dict__["use_param_info_gain"] = value
        self._sync_param_flags()

    def _sync_param_flags(self):
        self._invalidate()
        if self._buf is not None:
            on = bool(self.__dict__.get("use_param_info_gain"))
            self._buf[_PA] = on and self._pA2 is not None
            self._buf[_PB] = on and self._pBt is not None

    @property
    def C(self):
        if not self._packed:
            return self._raw["C"]
        return self._C

    @C.setter
    def C(self, value):
        """ln(softmax(C_m[:, tau]) + 1e-16) per modality as (H, No_m); 1-D C tiled over tau, 2-D by column."""
        if self._store("C", value):
            self._C = value
            self._invalidate()
            H = self.policy_len
            self._lnC = []
            for c in value:
                c = np.asarray(c, dtype=float)
                c = np.tile(c[:, None], (1, H)) if c.ndim == 1 else c[:, :H]
                e = np.exp(c - c.max(axis=0))
                self._lnC.append(np.log(e / e.sum(axis=0) + EPS_VAL).T.astype(self.dtype))
            if self._single:
                self._lnC_region[...] = np.concatenate(self._lnC, axis=1)

    @property
    def D(self):
        if not self._packed:
            return self._raw["D"]
        return self._D

    @D.setter
    def D(self, value):
        if self._store("D", value):
            self._D = value
            self._invalidate()
            self._D_packed = [np.asarray(d, dtype=self.dtype) for d in value]
            if self._single:
                self._D_region[...] = self._D_packed[0]

    @property
    def E(self):
        if not self._packed:
            return self._raw["E"]
        return self._E

    @E.setter
    def E(self, value):
        """ln(E + 1e-16)."""
        if self._store("E", value):
            self._E = value
            self._invalidate()
            self._lnE = np.log(np.asarray(value, dtype=self.dtype) + EPS_VAL)
            if self._single:
                self._lnE_region[...] = self._lnE

    def _refresh_A(self):
        """Recompute h = sum_o A ln(A + e^-16) and W(pA) [pA > 0] after A or pA changed."""
        for m, a in enumerate(self._A2):
            self._h[m][:] = (a * np.log(a + EXP_M16)).sum(axis=0)
        if self._pA2 is not None:
            for w, p in zip(self._WA2, self._pA2):
                w[...] = _wnorm_masked(p)
        if self._single:
            self._h_all[:] = sum(self._h)
        self._sync_param_flags()

    def _refresh_B(self):
        """Recompute W(pB) [pB > 0] (packed like B) after pB changed."""
        if self._pBt is not None:
            for w, p in zip(self._WBt, self._pBt):
                w[...] = _wnorm_masked(np.moveaxis(p, 1, 0)).swapaxes(0, 1)
        self._sync_param_flags()

    # ---- inference -------------------------------------------------------------------------

    def _sync_qs(self):
        """Copy a posterior that was assigned to ``agent.qs`` into the buffer."""
        self._qs_region[:] = self.qs[0]
        self._qs_own = self.qs

    def infer_states(self, observation, distr_obs=False):
        """Posterior over hidden states given one outcome index per modality (legacy VANILLA)."""
        if distr_obs:
            raise NotImplementedError("distributional observations (distr_obs=True) are not implemented")
        if not self._single:
            qs = self._infer_states_factorized([int(o) for o in observation])
            self.qs = qs
            return qs
        if self.qs is not self._qs_own:
            self._sync_qs()
        action = self.action
        if action is None:
            index = -1
        elif action is self._action_own:
            index = self._action_index
        else:
            index = int(action[0])
        if self._pending is not None:  # the last evaluation ahead was never used: stop evaluating ahead
            self._speculate = False
            self._pending = None
        ns = self._ns
        if self._speculate and not self._defer_logs:
            out = np.empty(ns + 2 * self._num_policies, self.dtype)
            _step_single(self._buf, tuple(observation), index, out)
            q = out[:ns]
            self._pending = (out[ns:].reshape(2, -1), self._version)
            self._q_pi_own = None
        else:
            q = np.empty(ns, self.dtype)
            _posterior_single(self._buf, tuple(observation), index, q)
        qs = np.empty(1, dtype=object)
        qs[0] = q
        self.qs = self._qs_own = qs
        return qs

    def _empirical_prior(self):
        """D at the first step, else x_f = B_f[..., a_f] . (x) qs_{BFL[f]} from the previous posterior."""
        if self.action is None:
            return self._D_packed
        qs = [np.asarray(q, dtype=self.dtype) for q in self.qs]
        return [self._Bt[f][int(self.action[f])] @ _kron([qs[g] for g in fl])
                for f, fl in enumerate(self.B_factor_list)]

    def _infer_states_factorized(self, obs):
        log_prior = np.log(np.concatenate(self._empirical_prior()) + EPS_VAL)
        lls = [np.log(self._A2[m][o] + EPS_VAL) for m, o in enumerate(obs)]
        layout = np.full((self.num_modalities, 2 + self.num_factors), -1, dtype=np.int64)
        offset = 0
        for m, fl in enumerate(self.A_factor_list):
            layout[m, :2 + len(fl)] = [offset, len(fl), *fl]
            offset += lls[m].size
        ll = np.concatenate(lls)
        acc_ll, acc_layout = self._legacy_joint_loglik(lls) if self._unsorted_A else (ll, layout)
        p = self.inference_params
        params = np.array([p["num_iter"], p["dF"], p["dF_tol"], 1.0 if p["compute_vfe"] else 0.0], dtype=self.dtype)
        q = _fpi_factorized(ll, layout, acc_ll, acc_layout, log_prior, self._q_offset, params)
        return obj_array(np.split(q, self._q_offset[1:-1]))

    def _legacy_joint_loglik(self, lls):
        """Legacy's VFE likelihood: each LL_m *reshaped* (not transposed) onto the factor grid and summed
        (``legacy/algos/fpi.py:265-272``). Differs from the true joint when an A_factor_list is unsorted."""
        F = self.num_factors
        joint = np.zeros(self.num_states, dtype=self.dtype)
        for m, fl in enumerate(self.A_factor_list):
            dims = [1] * F
            for f in fl:
                dims[f] = self.num_states[f]
            joint = joint + lls[m].reshape(dims)
        return joint.ravel(), np.array([[0, F, *range(F)]], dtype=np.int64)

    def infer_policies(self):
        """q_pi = softmax(gamma G + ln(E + 1e-16)) and G (negative EFE) of every policy."""
        if self._single:
            pending, self._pending = self._pending, None
            if pending is not None:
                if pending[1] == self._version and self.qs is self._qs_own:
                    G, q_pi = pending[0]
                    self.q_pi = self._q_pi_own = q_pi
                    self.G = G
                    return q_pi, G
                self._speculate = False  # something changes between the two calls (learning, settings)
            if self.qs is not self._qs_own:
                self._sync_qs()
            out = np.empty((2, self._num_policies), self.dtype)
            if self._defer_logs and self.use_states_info_gain:
                obar, log_obar = self._log_scratch
                _tree_outcomes(self._buf, obar)
                np.add(obar, EPS_VAL, out=log_obar)
                np.log(log_obar, out=log_obar)
                _policies_from_outcomes(self._buf, obar, log_obar, out)
            else:
                _policies_single(self._buf, out)
            G, q_pi = out
            self.q_pi = self._q_pi_own = q_pi
        else:
            G = self._efe_tree_factorized()
            x = G * self.gamma + self._lnE
            e = np.exp(x - x.max())
            q_pi = e / e.sum()
            self.q_pi = q_pi
        self.G = G
        return q_pi, G

    def _efe_tree_factorized(self):
        """G of every policy for several factors: the level-by-level tree of ``_policies_single`` with the
        joint contractions over (nodes, joint states) arrays in numpy."""
        dt, U = self.dtype, self._num_joint
        use_pb = bool(self.use_param_info_gain and self._pBt is not None)
        states = [np.asarray(q, dtype=dt)[None, :] for q in self.qs]
        g = np.zeros(1, dt)
        for tau in range(self.policy_len):
            n_parent = g.shape[0]
            parent = np.repeat(np.arange(n_parent), U)
            joint = np.tile(np.arange(U), n_parent)
            level = np.zeros(n_parent * U, dt)
            new_states = []
            for f, fl in enumerate(self.B_factor_list):
                x_in = _kron_rows([states[g_] for g_ in fl])
                acts = self._joint_actions[joint, f]
                x = np.empty((n_parent * U, self.num_states[f]), dt)
                for a in range(self.num_controls[f]):
                    sel = np.flatnonzero(acts == a)
                    x_parent = x_in[parent[sel]]
                    x[sel] = x_parent @ self._Bt[f][a].T
                    if use_pb:
                        level[sel] -= np.einsum("ns,ns->n", x[sel], x_parent @ self._WBt[f][a].T)
                new_states.append(x)
            states = new_states
            level += self._modality_terms(states, tau)
            g = g[parent] + level
        return g

    def _modality_terms(self, states, tau):
        """Sum over modalities of utility, state info gain and pA info gain of every node of a level,
        in chunks of nodes so that (nodes x joint states) arrays stay small."""
        n = states[0].shape[0]
        use_pa = bool(self.use_param_info_gain and self._pA2 is not None)
        total = np.zeros(n, self.dtype)
        for m, fl in enumerate(self.A_factor_list):
            A2 = self._A2[m]
            chunk = max(1, CHUNK_ELEMENTS // A2.shape[1])
            for start in range(0, n, chunk):
                rows = slice(start, min(n, start + chunk))
                qx = _kron_rows([states[f][rows] for f in fl])
                qo = qx @ A2.T
                if self.use_utility:
                    total[rows] += qo @ self._lnC[m][tau]
                if self.use_states_info_gain:
                    w = np.where(qx > EXP_M16, qx, 0).astype(self.dtype)
                    obar = w @ A2.T
                    total[rows] += w @ self._h[m] - np.einsum("no,no->n", obar, np.log(obar + EPS_VAL))
                if use_pa:
                    total[rows] -= np.einsum("no,no->n", qo, qx @ self._WA2[m].T)
        return total

    def sample_action(self):
        """Legacy action selection. One factor: the marginal, tie check and softmax were computed by
        ``_policies_single``; only the draw runs here, with numpy's global RNG in the same calls as
        legacy (``np.random.choice`` on a tie, ``np.random.multinomial`` when stochastic)."""
        if not self._single or self.q_pi is not self._q_pi_own:
            return super().sample_action()
        pick = int(self._buf[_PICK])
        mode = self.sampling_mode
        if pick < 0:
            p = self._draw_region[:len(self.policies) if mode == "full" else self._num_joint]
            if self.action_selection == "deterministic":
                pick = select_highest(np.asarray(p, dtype=float))
            else:
                pick = int(np.random.multinomial(1, self._draw_probabilities(p)).argmax())
        action = self._action_rows[mode][pick].copy()
        self.action = self._action_own = action
        self._action_index = self._first_action[mode][pick]
        return action

    def _draw_probabilities(self, p):
        """The probability vector handed to ``np.random.multinomial`` (as legacy's, float64)."""
        return p

    # ---- learning ----------------------------------------------------------------------------

    def update_A(self, obs):
        """pA_m[o_m] += lr_pA (x)_{f in AFL[m]} qs_f [A_m[o_m] > 0] for the modalities to learn; A = norm(pA)."""
        if self._pA2 is None:
            raise TypeError("update_A needs pA (legacy raises TypeError: len(None))")
        qs = [np.asarray(q, dtype=self.dtype) for q in self.qs]
        for m in self.modalities_to_learn:
            o = int(obs[m])
            self._pA2[m][o] += self.lr_pA * _kron([qs[f] for f in self.A_factor_list[m]]) * (self._A2[m][o] > 0)
        for m in range(self.num_modalities):
            self._A2[m][...] = normalise(self._pA2[m])
        self._refresh_A()
        return self.pA

    def update_B(self, qs_prev):
        """pB_f[..., a_f] += lr_pB qs_f (x) qs_prev_{BFL[f]} [B_f[..., a_f] > 0] for the factors to learn;
        then B = norm(pB). ``a_f`` is whatever ``agent.action`` holds now, as in legacy."""
        if self._pBt is None:
            raise TypeError("update_B needs pB (legacy raises TypeError: len(None))")
        qs = [np.asarray(q, dtype=self.dtype) for q in self.qs]
        prev = [np.asarray(q, dtype=self.dtype) for q in qs_prev]
        for f in self.factors_to_learn:
            a = int(self.action[f])
            update = np.multiply.outer(qs[f], _kron([prev[g] for g in self.B_factor_list[f]]))
            self._pBt[f][a] += self.lr_pB * update * (self._Bt[f][a] > 0)
        for f in range(self.num_factors):
            p = self._pBt[f]
            self._Bt[f][...] = p / p.sum(axis=1, keepdims=True)
        self._refresh_B()
        return self.pB

    # ---- protocol --------------------------------------------------------------------------

    @classmethod
    def supports(cls, options):
        """Every legacy VANILLA model runs; other inference algorithms and distributional observations
        are refused."""
        algo = options.get("inference_algo", "VANILLA")
        if algo != "VANILLA":
            return False, f"inference_algo={algo!r}: only VANILLA is implemented"
        if options.get("distr_obs"):
            return False, "distributional observations (distr_obs=True) are not implemented"
        return True, ""

    @classmethod
    def warmup(cls):
        """Compile (or load from numba's on-disk cache) every kernel for this dtype on tiny models.

        Returns the seconds it took, so a caller can time compilation apart from steady state.
        numpy's global RNG is left as it was.
        """
        from pymdpbench.models import random_model

        start = time.perf_counter()
        state = np.random.get_state()
        try:
            cases = [
                (dict(num_states=[3], num_obs=[2], num_controls=[2]), {}),
                (dict(num_states=[3], num_obs=[2, 3], num_controls=[2], dirichlet=True),
                 dict(use_param_info_gain=True, policy_len=2, sampling_mode="full", action_selection="stochastic")),
                (dict(num_states=[2, 3], num_obs=[2], num_controls=[2, 1], dirichlet=True),
                 dict(use_param_info_gain=True)),
            ]
            if cls.defer_logs:
                cases.append((dict(num_states=[3], num_obs=[4], num_controls=[4]), dict(policy_len=3)))
            for model_kwargs, agent_kwargs in cases:
                model = random_model(0, **model_kwargs)
                agent = cls(**model.agent_kwargs(), **agent_kwargs)
                np.random.seed(0)
                for _ in range(2):
                    obs = [0] * len(model.num_obs)
                    qs_prev = [q.copy() for q in agent.qs]
                    agent.infer_states(obs)
                    agent.infer_policies()
                    agent.sample_action()
                    if model.pA is not None:
                        agent.update_A(obs)
                        agent.update_B(qs_prev)
        finally:
            np.random.set_state(state)
        return time.perf_counter() - start


def construct_joint_actions(num_controls):
    """(U, F) int array: joint action u's per-factor actions, factor 0 the most significant digit."""
    grids = np.meshgrid(*[np.arange(n) for n in num_controls], indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1).astype(np.int64)


def warmup():
    """Compile the float64 kernels; seconds taken (see :meth:`Agent.warmup`)."""
    return Agent.warmup()
