"""Many agents per compiled call: B agents of pymdp's legacy ``Agent`` on one shared model.

One compiled numba call steps the whole batch: for every agent the empirical prior
(``B[:, :, a] @ qs``, ``D`` before the first action), the one-factor posterior, the expected free
energy of every policy, ``q_pi`` and the action probabilities; action draws follow. Learning
(``update_A``, ``update_B``) is one compiled call each. Agents run in parallel with numba ``prange``
(``threads`` pinned with ``numba.set_num_threads``; one thread runs a serial build of the same
kernel, without the thread pool's start-up cost). The model (``A``, ``B``, ``D``, ``E`` and
what is precomputed from them) is held once; each agent holds only its beliefs (``qs``, ``G``,
``q_pi``, the action probabilities, its action) and the parameters given per agent.

Semantics: exactly ``pymdp.legacy.agent.Agent`` (pymdp 1.0.4), VANILLA inference, one
hidden-state factor, any number of modalities, any policy length:

* posterior ``qs = softmax(sum_m ln(A_m[o_m, :] + 1e-16) + ln(prior + 1e-16))``
  (``legacy/algos/fpi.py:248-255``), prior ``B[:, :, a] @ qs`` or ``D`` (``legacy/agent.py:507-511``);
* ``G`` = utility ``qo . ln(softmax(C) + 1e-16)`` (``legacy/control.py:619-659``) + state info gain
  as ``spm_MDP_G`` (``legacy/maths.py:517-573``: states with ``x > e^-16`` only, ``e^-16`` inside
  the log of the likelihood entropy, ``1e-16`` in that of the predicted outcomes), summed over
  the policy's steps; ``q_pi = softmax(gamma G + ln(E + 1e-16))``;
* marginal or full action selection, deterministic (ties within 1e-8, ``legacy/control.py:1229``)
  or stochastic (``softmax(alpha ln(p + 1e-16))``);
* ``update_A``: ``pA_m[o_m] += lr_pA qs [A_m[o_m] > 0]``, ``A = norm(pA)``; ``update_B``:
  ``pB[:, :, a] += lr_pB qs (x) qs_prev [B[:, :, a] > 0]``, ``B = norm(pB)`` (``legacy/learning.py``).

Policies are evaluated over the policy tree as in the numba engine: the ``U + ... + U^H`` distinct
policy prefixes once each, ``G`` of a policy the sum along its path.

Loop structure: with a shared ``A`` and ``B`` the posterior, the policies and the action selection
run on blocks of agents (up to 128) held in structure-of-arrays scratch (state or outcome index
outer, agent index innermost and contiguous), so that the innermost loops, the vectorising ``log``
and ``exp`` included, run over the agents of a block, and the policy tree's products with ``B`` and
``A`` are one matrix product per node for the whole block (``np.dot``, numba's call into BLAS);
each block's ``qs``, ``G`` and ``q_pi`` are copied in and out of the
(B, ...) arrays. With a per-agent ``A`` or ``B`` (learning) the posterior and the policies run
agent by agent, the inner loops over states; the action selection runs on blocks as well.
Every agent's numbers are those of the agent-by-agent loop to rounding.

Random draws (``draws``):

* ``"numpy"`` (default): the draws pymdp makes, from numpy's global ``RandomState``, in agent order:
  ``np.random.choice`` for an agent whose deterministic choice is a tie, ``np.random.multinomial``
  for every agent when stochastic. The compiled call reports which agents need a draw; the draws
  run in Python (a few microseconds per drawing agent). Agent ``i`` of a batch then equals a
  single-agent engine ``i`` stepped in agent order, one after the other, on the same observations.
* ``"uniform"``: when stochastic, one ``np.random.random_sample(B)`` call per step and the compiled
  call inverts each agent's cumulative distribution (the first action whose cumulative probability
  exceeds the uniform). Same distribution, not pymdp's draws: stochastic actions and the RNG state
  then differ from a single-agent engine. Deterministic selection makes no draw in either mode unless
  there is a tie, which is always drawn as pymdp does (``np.random.choice``), so deterministic runs
  are identical in both modes.

Not covered: several hidden-state factors, parameter information gain, time-varying ``C``; the
constructor and ``supports()`` refuse them by name.

The batched-runner interface (what ``studies/batch.py`` and ``Traits.batched`` expect of any
engine's batched form): ``Runner(kwargs, batch_size, seed=None, threads=1)`` with ``kwargs`` the
legacy Agent keywords; ``step(observations)`` with observations a (B, M) int array returns the
actions (B, F) int array; ``qs`` (list over factors of (B, Ns_f) arrays), ``q_pi`` (B, P) and
``action`` (B, F) as arrays; ``threads`` the threads really used; ``close()``. See docs/batched.md.
"""

import time
from collections import namedtuple

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

from pymdpbench.engines.base import EPS_VAL, TIE_TOL, LegacyAgent, select_highest

#: ``spm_MDP_G``'s state threshold and likelihood-log stabiliser, ``legacy/maths.py:547,560``.
EXP_M16 = float(np.exp(-16.0))

#: The model, shared by all agents (leading axis 1) unless learnt or given per agent (leading axis B),
#: held transposed so that every product in the kernels runs along contiguous rows:
#: A: (KA, Ns, sum No), A[k, s, rows[m] + o] = A_m[o, s], all modalities stacked; lnA: (1, sum No, Ns)
#: ln(A + 1e-16) when A is shared, else empty (taken on the fly); h: (KA, Ns) sum_m sum_o
#: A ln(A + e^-16); B: (KB, Nu, Ns, Ns), B[k, a, s, r] = B[r, s, a] (previous state, next state);
#: D: (1, Ns); lnC: (KC, sum No) ln(softmax(C_m) + 1e-16); lnE: (P,); gamma: (KG,); alpha: (KL,);
#: rows: (M + 1,) first row of each modality; first: (P,) first action of each policy;
#: settings: (6,) int: Nu, policy length, utility, state info gain, full sampling, stochastic.
Model = namedtuple("Model", "A lnA h B D lnC lnE gamma alpha rows first settings")
#: Per-agent beliefs: qs (B, Ns); action (B,) int, -1 before the first; G, q_pi (B, P);
#: p (B, K) what an action is drawn from (K = Nu marginal, P full); pick (B,) index into p, -1 to draw.
State = namedtuple("State", "qs action G q_pi p pick")

#: The next-state and outcome axes of A, B, h and lnC are zero-padded to a multiple of this, and the
#: kernels' inner loops run over the padded length: whole vectors, no scalar remainder loop. Padded
#: entries contribute exact zeros. Measured (1,024 agents, one thread, CPU time per agent-step):
#: 6 states 387 ns padded against 550 ns unpadded; no difference at 8 and 12 states; 4.6 us against
#: 4.7-5.2 us at 64 states.
LANES = 8

#: Agents per block of the shared-model kernel (a multiple of LANES, at most MAX_BLOCK), chosen so
#: that the policy tree's block scratch (nodes x padded states x agents) holds about BLOCK_SCRATCH
#: numbers.
MAX_BLOCK = 128
BLOCK_SCRATCH = 8192

#: kernel stages (bit mask)
POSTERIOR, POLICIES, SELECT = 1, 2, 4

#: ``error_model="numpy"``: no zero-division branch in the loops, so that they vectorise.
_JIT = {"cache": True, "error_model": "numpy", "fastmath": {"reassoc", "contract"}}


# --------------------------------------------------------------------------------------------
# log and exp that vectorise. numba calls the C library's scalar log and exp (~10 ns each here,
# without Intel SVML); a step at 8 states takes ~50 of them per agent. These are fdlibm's e_log.c
# and e_exp.c in float64 (error < 1 ulp: measured max relative difference from numpy 2.2e-16),
# written with bit casts so that LLVM vectorises the loops that call them (~1 ns each).
# Their own code is compiled without fast-math, which keeps fdlibm's evaluation order.
# --------------------------------------------------------------------------------------------


@intrinsic
def _bits(typingctx, x):
    """The int64 bit pattern of a float64."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return types.int64(types.float64), codegen


@intrinsic
def _from_bits(typingctx, i):
    """The float64 of an int64 bit pattern."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return types.float64(types.int64), codegen


_LG1, _LG2, _LG3, _LG4 = (
    6.666666666666735130e-01,
    3.999999999940941908e-01,
    2.857142874366239149e-01,
    2.222219843214978396e-01,
)
_LG5, _LG6, _LG7 = 1.818357216161805012e-01, 1.531383769920937332e-01, 1.479819860511658591e-01
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_P1, _P2, _P3 = 1.66666666666666019037e-01, -2.77777777770155933842e-03, 6.61375632143793436117e-05
_P4, _P5 = -1.65339022054652515390e-06, 4.13813679705723846039e-08
_INV_LN2 = 1.44269504088896338700e00
_MATH = {"cache": True, "inline": "always", "error_model": "numpy"}


@njit(**_MATH)
def _ln(x):
    """ln x for a positive normal x (here always p + 1e-16): x = 2^k m, m in [sqrt(2)/2, sqrt(2)),
    ln m = 2 atanh(f / (2 + f)) with f = m - 1 by fdlibm's polynomial. Returns float64."""
    x = np.float64(x)
    b = _bits(x)
    k = (b >> 52) - 1023
    m = _from_bits((b & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)
    big = m > 1.4142135623730951
    m = m * 0.5 if big else m
    k = k + 1 if big else k
    f = m - 1.0
    s = f / (2.0 + f)
    dk = np.float64(k)
    z = s * s
    w = z * z
    R = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7))) + w * (_LG2 + w * (_LG4 + w * _LG6))
    hfsq = 0.5 * f * f
    return dk * _LN2_HI - ((hfsq - (s * (hfsq + R) + dk * _LN2_LO)) - f)


@njit(**_MATH)
def _exp(x):
    """e^x for x <= 0 (softmax arguments): x = k ln2 + r, fdlibm's rational approximation of e^r,
    times 2^k through the exponent bits; 0 below -708 (numpy gives a subnormal there). float64."""
    x = np.float64(x)
    low = x < -708.0
    x = -708.0 if low else x
    kf = np.floor(x * _INV_LN2 + 0.5)
    hi = x - kf * _LN2_HI
    lo = kf * _LN2_LO
    r = hi - lo
    r2 = r * r
    c = r - r2 * (_P1 + r2 * (_P2 + r2 * (_P3 + r2 * (_P4 + r2 * _P5))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    out = _from_bits(_bits(y) + (np.int64(kf) << 52))
    return 0.0 if low else out


@njit(inline="always", **_JIT)
def _softmax_columns(x, nb, top, total):
    """x[:, j] <- softmax(x[:, j]) for the first ``nb`` columns (one agent each, structure of
    arrays); top and total: (nb,) scratch."""
    dt = x.dtype
    for j in range(nb):
        top[j] = -np.inf
    for r in range(x.shape[0]):
        for j in range(nb):
            top[j] = max(top[j], x[r, j])
    for j in range(nb):
        total[j] = dt.type(0)
    for r in range(x.shape[0]):
        for j in range(nb):
            x[r, j] = _exp(x[r, j] - top[j])
            total[j] += x[r, j]
    for r in range(x.shape[0]):
        for j in range(nb):
            x[r, j] /= total[j]


# --------------------------------------------------------------------------------------------
# kernels: the whole batch in one function each, arrays indexed directly (no per-agent views:
# a view or a call with array arguments costs reference counting per agent, which measured more
# than the arithmetic at 8 states)
# --------------------------------------------------------------------------------------------


def _step_batch(model, state, observations, uniforms, stages, chunks):
    """The stages (bit mask of POSTERIOR, POLICIES, SELECT) for every agent i; agents split into
    ``chunks`` contiguous chunks that run in parallel (``prange``), each with its own scratch.

    POSTERIOR: prior = B[:, :, action_i] @ qs_i (D if action_i < 0);
               qs_i = softmax(sum_m ln(A_m[o_im] + 1e-16) + ln(prior + 1e-16)).
    POLICIES:  over the policy tree (root: qs_i; node k of level tau reached by action k % U from
               node k // U of the level above): x = B_a x_parent, qo = A x, w = x [x > e^-16],
               obar = A w (qo when every state is kept); contribution qo . lnC + w . h
               - obar . ln(obar + 1e-16); G_i = the sums along the paths to the leaves;
               q_pi_i = softmax(gamma_i G_i + lnE).
    SELECT:    p_i = the marginal over first actions (accumulated in policy order, normalised) or
               q_pi_i (full); stochastic: p_i = softmax(alpha_i ln(p_i + 1e-16)). pick_i = the index
               of the unique entry within 1e-8 of the max (deterministic), the first index whose
               cumulative probability exceeds uniforms[i] (stochastic, uniforms given), else -1.
    Shapes: see :data:`Model` and :data:`State`; observations (B, M) int64; uniforms (B,) or (0,).
    SELECT also sets ``action_i`` of every agent it picks for.
    Returns the number of agents left to draw (pick -1); or, computing nothing, -1 when an
    observation is out of range (with POSTERIOR).
    """
    At, lnA, h, Bt, D, lnC, lnE, gammas, alphas, rows, first, settings = model
    qs, action, G, q_pi, p, pick = state
    batch, ns = qs.shape
    dt = qs.dtype
    nsp = Bt.shape[3]
    nop = At.shape[2]
    num_modalities = rows.shape[0] - 1
    num_policies = G.shape[1]
    k_draw = p.shape[1]
    nu, horizon = settings[0], settings[1]
    use_util, use_ig, full, stochastic = settings[2] > 0, settings[3] > 0, settings[4] > 0, settings[5] > 0
    # agent i reads row i * s_X of a model array held per agent, row 0 of a shared one
    s_a = 1 if At.shape[0] > 1 else 0
    s_b = 1 if Bt.shape[0] > 1 else 0
    s_c = 1 if lnC.shape[0] > 1 else 0
    s_g = 1 if gammas.shape[0] > 1 else 0
    s_l = 1 if alphas.shape[0] > 1 else 0
    has_lnA = lnA.shape[0] > 0
    has_uniforms = uniforms.shape[0] > 0
    eps = dt.type(EPS_VAL)
    threshold = dt.type(EXP_M16)
    zero = dt.type(0)
    if stages & POSTERIOR:
        for i in range(batch):
            for m in range(num_modalities):
                if observations[i, m] < 0 or observations[i, m] >= rows[m + 1] - rows[m]:
                    return -1
    nodes = 1  # the root (qs) and every policy prefix, breadth first: node k > 0 is reached by action
    level = 1  # (k - 1) % nu from node (k - 1) // nu; the leaves, one per policy, come last
    for _ in range(horizon):
        level *= nu
        nodes += level
    leaves = nodes - level
    # shared A and B (no per-agent likelihood or transitions): blocks of agents in structure-of-arrays
    # scratch, [state, agent], so that the innermost loops run over the agents of a block with unit
    # stride and vectorise (the logs and exps included); else agent by agent
    blocked = s_a == 0 and s_b == 0 and has_lnA
    blk = min(MAX_BLOCK, max(LANES, BLOCK_SCRATCH // (nodes * nsp) // LANES * LANES))
    for c in prange(chunks):
        lo = c * batch // chunks
        hi = (c + 1) * batch // chunks
        prior = np.empty(ns, dt)
        xs = np.empty((nodes, nsp), dt)
        values = np.empty(nodes, dt)
        qo = np.empty(nop, dt)
        w = np.empty(nsp, dt)
        # block scratch: agent index last
        q_b = np.empty((ns, blk), dt)
        prior_b = np.empty((ns, blk), dt)
        row_b = np.empty(blk, np.int64)
        top_b = np.empty(blk, dt)
        total_b = np.empty(blk, dt)
        gamma_b = np.empty(blk, dt)
        xs_b = np.zeros((nodes, nsp, blk), dt)  # (finite in the columns past a last, partial block)
        values_b = np.empty((nodes, blk), dt)
        value_b = np.empty(blk, dt)
        qo_b = np.empty((nop, blk), dt)
        w_b = np.zeros((nsp, blk), dt)
        kept_b = np.empty(blk, np.int64)
        lnC_b = np.empty((nop, blk), dt)
        q_pi_b = np.empty((num_policies, blk), dt)
        p_b = np.empty((k_draw, blk), dt)
        pick_b = np.empty(blk, np.int64)
        count_b = np.empty(blk, np.int64)
        cumulative_b = np.empty(blk, np.float64)
        for b0 in range(lo, hi, blk):
            nb = min(blk, hi - b0)
            if blocked and stages & POSTERIOR:
                for j in range(nb):  # the prior agent by agent (its own action's B), stored transposed
                    a = action[b0 + j]
                    if a >= 0:
                        for r in range(ns):
                            prior[r] = zero
                        for s in range(ns):
                            q = qs[b0 + j, s]
                            for r in range(ns):
                                prior[r] += Bt[0, a, s, r] * q
                    else:
                        for r in range(ns):
                            prior[r] = D[0, r]
                    for r in range(ns):
                        prior_b[r, j] = prior[r]
                for s in range(ns):
                    for j in range(nb):
                        q_b[s, j] = zero
                for m in range(num_modalities):
                    for j in range(nb):
                        row_b[j] = rows[m] + observations[b0 + j, m]
                    for s in range(ns):
                        for j in range(nb):
                            q_b[s, j] += lnA[0, row_b[j], s]
                for s in range(ns):
                    for j in range(nb):
                        q_b[s, j] += _ln(prior_b[s, j] + eps)
                _softmax_columns(q_b, nb, top_b, total_b)
                for j in range(nb):
                    for s in range(ns):
                        qs[b0 + j, s] = q_b[s, j]
            if blocked and stages & POLICIES:
                for j in range(nb):
                    for s in range(ns):
                        xs_b[0, s, j] = qs[b0 + j, s]
                    values_b[0, j] = zero
                    gamma_b[j] = gammas[(b0 + j) * s_g]
                    for o in range(nop):
                        lnC_b[o, j] = lnC[(b0 + j) * s_c, o]
                for node in range(1, nodes):  # breadth first (see ``leaves``)
                    parent = (node - 1) // nu
                    a = (node - 1) % nu
                    np.dot(Bt[0, a].T, xs_b[parent, :ns], xs_b[node])  # every agent of the block at once
                    for j in range(nb):
                        value_b[j] = zero
                        kept_b[j] = 0
                    dropped = 0  # agents of the block with a state at or below e^-16
                    if use_ig:
                        for s in range(nsp):
                            hs = h[0, s]
                            for j in range(nb):
                                x = xs_b[node, s, j]
                                keep = x > threshold
                                kept_b[j] += keep
                                value_b[j] += (x if keep else zero) * hs
                        for j in range(nb):
                            dropped += kept_b[j] < ns
                    # qo = A x; obar = A w equals it for an agent that keeps every state
                    if use_util or (use_ig and dropped == 0):
                        np.dot(At[0].T, xs_b[node, :ns], qo_b)
                    if use_util:
                        for o in range(nop):
                            for j in range(nb):
                                value_b[j] += qo_b[o, j] * lnC_b[o, j]
                    if use_ig:
                        if dropped > 0:  # obar over the kept states only
                            for s in range(ns):
                                for j in range(blk):
                                    x = xs_b[node, s, j]
                                    w_b[s, j] = x if x > threshold else zero
                            np.dot(At[0].T, w_b[:ns], qo_b)
                        for o in range(nop):
                            for j in range(nb):
                                value_b[j] -= qo_b[o, j] * dt.type(_ln(qo_b[o, j] + eps))
                    for j in range(nb):
                        values_b[node, j] = value_b[j] + values_b[parent, j]
                for k in range(num_policies):
                    for j in range(nb):
                        q_pi_b[k, j] = values_b[leaves + k, j] * gamma_b[j] + lnE[k]
                _softmax_columns(q_pi_b, nb, top_b, total_b)
                for j in range(nb):
                    for k in range(num_policies):
                        G[b0 + j, k] = values_b[leaves + k, j]
                        q_pi[b0 + j, k] = q_pi_b[k, j]
            for i in range(b0, b0 + nb):
                ka = i * s_a
                kb = i * s_b
                if not blocked and stages & POSTERIOR:
                    a = action[i]
                    if a >= 0:
                        for r in range(ns):
                            prior[r] = zero
                        for s in range(ns):
                            q = qs[i, s]
                            for r in range(ns):
                                prior[r] += Bt[kb, a, s, r] * q
                    else:
                        for r in range(ns):
                            prior[r] = D[0, r]
                    for s in range(ns):
                        qs[i, s] = zero
                    for m in range(num_modalities):
                        row = rows[m] + observations[i, m]
                        if has_lnA:
                            for s in range(ns):
                                qs[i, s] += lnA[0, row, s]
                        else:
                            for s in range(ns):
                                qs[i, s] += _ln(At[ka, s, row] + eps)
                    top = -np.inf
                    for s in range(ns):
                        qs[i, s] += _ln(prior[s] + eps)
                        top = max(top, qs[i, s])
                    total = zero
                    for s in range(ns):
                        qs[i, s] = _exp(qs[i, s] - top)
                        total += qs[i, s]
                    for s in range(ns):
                        qs[i, s] /= total
                if not blocked and stages & POLICIES:
                    kc = i * s_c
                    for s in range(ns):
                        xs[0, s] = qs[i, s]
                    values[0] = zero
                    for node in range(1, nodes):  # breadth first (see ``leaves``)
                        parent = (node - 1) // nu
                        a = (node - 1) % nu
                        for r in range(nsp):
                            xs[node, r] = zero
                        for s in range(ns):
                            q = xs[parent, s]
                            for r in range(nsp):
                                xs[node, r] += Bt[kb, a, s, r] * q
                        value = zero
                        kept = 0
                        if use_ig:
                            for s in range(nsp):
                                keep = xs[node, s] > threshold
                                w[s] = xs[node, s] if keep else zero
                                kept += keep
                                value += w[s] * h[ka, s]
                        if use_util or (use_ig and kept == ns):
                            for o in range(nop):
                                qo[o] = zero
                            for s in range(ns):
                                q = xs[node, s]
                                for o in range(nop):
                                    qo[o] += At[ka, s, o] * q
                        if use_util:
                            for o in range(nop):
                                value += qo[o] * lnC[kc, o]
                        if use_ig:
                            if kept < ns:  # obar over the kept states only
                                for o in range(nop):
                                    qo[o] = zero
                                for s in range(ns):
                                    q = w[s]
                                    for o in range(nop):
                                        qo[o] += At[ka, s, o] * q
                            for o in range(nop):
                                value -= qo[o] * dt.type(_ln(qo[o] + eps))
                        values[node] = value + values[parent]
                    gamma = gammas[i * s_g]
                    top = -np.inf
                    for j in range(num_policies):
                        G[i, j] = values[leaves + j]
                        q_pi[i, j] = G[i, j] * gamma + lnE[j]
                        top = max(top, q_pi[i, j])
                    total = zero
                    for j in range(num_policies):
                        q_pi[i, j] = _exp(q_pi[i, j] - top)
                        total += q_pi[i, j]
                    for j in range(num_policies):
                        q_pi[i, j] /= total
            if stages & SELECT:
                if not (blocked and stages & POLICIES):  # q_pi not in the block scratch
                    for j in range(nb):
                        for k in range(num_policies):
                            q_pi_b[k, j] = q_pi[b0 + j, k]
                if full:
                    for k in range(num_policies):
                        for j in range(nb):
                            p_b[k, j] = q_pi_b[k, j]
                else:
                    for k in range(k_draw):
                        for j in range(nb):
                            p_b[k, j] = zero
                    for k in range(num_policies):
                        for j in range(nb):
                            p_b[first[k], j] += q_pi_b[k, j]
                    for j in range(nb):
                        total_b[j] = zero
                    for k in range(k_draw):
                        for j in range(nb):
                            total_b[j] += p_b[k, j]
                    for k in range(k_draw):
                        for j in range(nb):
                            p_b[k, j] /= total_b[j]
                for j in range(nb):
                    pick_b[j] = -1
                if stochastic:
                    for k in range(k_draw):
                        for j in range(nb):
                            p_b[k, j] = _ln(p_b[k, j] + eps) * alphas[(b0 + j) * s_l]
                    _softmax_columns(p_b, nb, top_b, total_b)
                    if has_uniforms:  # the first action whose cumulative probability exceeds u
                        for j in range(nb):
                            cumulative_b[j] = 0.0
                            count_b[j] = 0
                            pick_b[j] = k_draw - 1
                        for k in range(k_draw):
                            for j in range(nb):
                                cumulative_b[j] += p_b[k, j]
                                hit = count_b[j] == 0 and uniforms[b0 + j] < cumulative_b[j]
                                pick_b[j] = k if hit else pick_b[j]
                                count_b[j] += hit
                else:
                    for j in range(nb):
                        top_b[j] = -np.inf
                    for k in range(k_draw):
                        for j in range(nb):
                            top_b[j] = max(top_b[j], p_b[k, j])
                    for j in range(nb):
                        count_b[j] = 0
                    for k in range(k_draw - 1, -1, -1):  # the first index within TIE_TOL of the max
                        for j in range(nb):
                            near = abs(p_b[k, j] - top_b[j]) <= TIE_TOL
                            count_b[j] += near
                            pick_b[j] = k if near else pick_b[j]
                    for j in range(nb):
                        pick_b[j] = pick_b[j] if count_b[j] == 1 else -1
                for j in range(nb):
                    for k in range(k_draw):
                        p[b0 + j, k] = p_b[k, j]
                    pick[b0 + j] = pick_b[j]
                    if pick_b[j] >= 0:
                        action[b0 + j] = first[pick_b[j]] if full else pick_b[j]
    left = 0
    if stages & SELECT:
        for i in range(batch):
            left += pick[i] < 0
    return left


def _learn_batch(model, pA, pB, state, observations, qs_prev, learn_modalities, lr, chunks):
    """Learning for every agent i (its own At, h or Bt, pA, pB: leading axis B).

    ``observations`` (B, M) given: update_A, pA[i, :, o_im] += lr[0] qs_i [A > 0] on the modalities
    flagged in ``learn_modalities`` (M,), then A = norm(pA) per modality (and h, and lnA when held).
    Else update_B: pB[i, a_i] += lr[1] qs_prev_i (x) qs_i [B > 0] (layout (prev, next)), then that
    action's B renormalised over next states (``legacy/learning.py``; legacy renormalises every
    action, whose other entries are unchanged).
    """
    At, lnA, h, Bt = model.A, model.lnA, model.h, model.B
    rows = model.rows
    qs = state.qs
    action = state.action
    batch, ns = qs.shape
    dt = qs.dtype
    exp_m16 = dt.type(EXP_M16)
    eps = dt.type(EPS_VAL)
    update_a = observations.shape[0] > 0
    for c in prange(chunks):
        lo = c * batch // chunks
        hi = (c + 1) * batch // chunks
        for i in range(lo, hi):
            if update_a:
                for m in range(learn_modalities.shape[0]):
                    if learn_modalities[m]:
                        row = rows[m] + observations[i, m]
                        for s in range(ns):
                            if At[i, s, row] > 0:
                                pA[i, s, row] += lr[0] * qs[i, s]
                for s in range(ns):
                    h[i, s] = 0
                    for m in range(rows.shape[0] - 1):
                        total = dt.type(0)
                        for row in range(rows[m], rows[m + 1]):
                            total += pA[i, s, row]
                        for row in range(rows[m], rows[m + 1]):
                            value = pA[i, s, row] / total
                            At[i, s, row] = value
                            h[i, s] += value * dt.type(_ln(value + exp_m16))
                            if lnA.shape[0] > 0:
                                lnA[i, row, s] = _ln(value + eps)
            else:
                a = action[i]
                for s in range(ns):
                    total = dt.type(0)
                    for r in range(ns):
                        if Bt[i, a, s, r] > 0:
                            pB[i, a, s, r] += lr[1] * qs[i, r] * qs_prev[i, s]
                        total += pB[i, a, s, r]
                    for r in range(ns):
                        Bt[i, a, s, r] = pB[i, a, s, r] / total


# The parallel builds are not cached on disk: numba's cache is keyed by the Python function, so a
# cached serial build of the same function would be loaded for them (and run on one thread).
_step_serial = njit(**_JIT)(_step_batch)
_step_parallel = njit(parallel=True, **{**_JIT, "cache": False})(_step_batch)
_learn_serial = njit(**_JIT)(_learn_batch)
_learn_parallel = njit(parallel=True, **{**_JIT, "cache": False})(_learn_batch)


def _padded(array, dtype):
    """``array`` as a C-contiguous array of ``dtype``, its last axis zero-padded to a multiple of LANES."""
    pad = -array.shape[-1] % LANES
    return np.ascontiguousarray(np.pad(array, [(0, 0)] * (array.ndim - 1) + [(0, pad)]), dtype=dtype)


# --------------------------------------------------------------------------------------------
# the batched agent
# --------------------------------------------------------------------------------------------


class BatchedAgent:
    """B agents of pymdp's legacy ``Agent`` on one model, stepped together (float64).

    ``kwargs``: the legacy Agent keywords (``A, B, C, D, E, pA, pB, policy_len, gamma, alpha,
    action_selection, sampling_mode, lr_pA, lr_pB, modalities_to_learn, ...``), shared by all agents.
    ``per_agent``: optional per-agent values overriding them: ``"C"`` (a list of one (B, No_m) array
    per modality), ``"gamma"``, ``"alpha"`` ((B,) arrays), ``"pA"`` (a list of (B, No_m, Ns)
    arrays), ``"pB"`` (a list of one (B, Ns, Ns, Nu) array). ``pA``/``pB`` (shared or per agent)
    give each agent its own copy to learn. ``seed``: if given, ``np.random.seed(seed)`` (the draws
    come from numpy's global RNG, as pymdp's). ``threads``: numba threads across agents.
    ``draws``: "numpy" or "uniform" (module docstring).
    """

    dtype = np.float64

    def __init__(self, kwargs, batch_size, seed=None, threads=1, per_agent=None, draws="numpy"):
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(threads, (int, np.integer)) or not 1 <= threads <= numba.config.NUMBA_NUM_THREADS:
            raise ValueError(
                f"threads must be an integer from 1 to {numba.config.NUMBA_NUM_THREADS} "
                f"(NUMBA_NUM_THREADS), got {threads!r}"
            )
        if draws not in ("numpy", "uniform"):
            raise ValueError(f"draws must be 'numpy' or 'uniform', got {draws!r}")
        per_agent = dict(per_agent or {})
        unknown = set(per_agent) - {"C", "gamma", "alpha", "pA", "pB"}
        if unknown:
            raise ValueError(f"per_agent accepts C, gamma, alpha, pA, pB; got {', '.join(sorted(unknown))}")
        spec = LegacyAgent(**kwargs)
        supported, reason = self.supports(
            {
                "num_states": spec.num_states,
                "num_obs": spec.num_obs,
                "num_controls": spec.num_controls,
                "policy_len": spec.policy_len,
                "use_param_info_gain": spec.use_param_info_gain,
                "C": spec.C,
            }
        )
        if not supported:
            raise ValueError(f"{type(self).__name__}: {reason}")
        if seed is not None:
            np.random.seed(seed)
        self.batch_size = B = int(batch_size)
        self.threads = int(threads)
        self.draws = draws
        self.num_states, self.num_obs, self.num_controls = spec.num_states, spec.num_obs, spec.num_controls
        self.num_factors, self.num_modalities = 1, len(spec.num_obs)
        self.policies = spec.policies
        self.policy_len = spec.policy_len
        self.action_selection, self.sampling_mode = spec.action_selection, spec.sampling_mode
        self.lr_pA, self.lr_pB = float(spec.lr_pA), float(spec.lr_pB)
        self.modalities_to_learn = spec.modalities_to_learn
        self.factors_to_learn = spec.factors_to_learn
        dt = self.dtype
        ns, nu, P = spec.num_states[0], spec.num_controls[0], len(spec.policies)

        pA = self._per_agent_stack(per_agent.get("pA"), spec.pA, "pA", [(n, ns) for n in spec.num_obs])
        pB = self._per_agent_stack(per_agent.get("pB"), spec.pB, "pB", [(ns, ns, nu)])
        bounds = list(zip(*self._row_bounds(spec.num_obs)))
        if pA is not None:
            self._pA = _padded(pA.transpose(0, 2, 1), dt)  # (B, Ns, sum No padded)
            A = _padded(
                np.concatenate(
                    [self._pA[:, :, r0:r1] / self._pA[:, :, r0:r1].sum(axis=2, keepdims=True) for r0, r1 in bounds],
                    axis=2,
                ),
                dt,
            )
        else:
            self._pA = None
            A = _padded(np.concatenate([np.asarray(a, dtype=float) for a in spec.A]).T[None], dt)
        if pB is not None:
            self._pB = _padded(pB.transpose(0, 3, 2, 1), dt)  # (B, Nu, Ns prev, Ns next padded)
            Bm = self._pB / self._pB.sum(axis=3, keepdims=True)
        else:
            self._pB = None
            Bm = _padded(np.asarray(spec.B[0], dtype=float).transpose(2, 1, 0)[None], dt)
        real = A[:, :, : sum(spec.num_obs)]
        lnA = np.log(real.transpose(0, 2, 1) + EPS_VAL) if A.shape[0] == 1 else np.empty((0, 0, 0))
        lnA = np.ascontiguousarray(lnA, dtype=dt)
        h = _padded((real * np.log(real + EXP_M16)).sum(axis=2), dt)

        C = per_agent.get("C", spec.C)
        if len(C) != len(spec.num_obs):
            raise ValueError(f"C must hold one array per modality ({len(spec.num_obs)}), got {len(C)}")
        lnC = [np.atleast_2d(self._log_preferences(c, n, m)) for m, (c, n) in enumerate(zip(C, spec.num_obs))]
        agents_in_C = max(c.shape[0] for c in lnC)
        lnC = _padded(np.concatenate([np.broadcast_to(c, (agents_in_C, c.shape[1])) for c in lnC], axis=1), dt)
        gamma = self._per_agent_scalar(per_agent.get("gamma", spec.gamma), "gamma")
        alpha = self._per_agent_scalar(per_agent.get("alpha", spec.alpha), "alpha")
        self.gamma, self.alpha = gamma, alpha
        rows = np.concatenate([[0], np.cumsum(spec.num_obs)]).astype(np.int64)
        first = np.ascontiguousarray(spec.policies[:, 0, 0], dtype=np.int64)
        full = spec.sampling_mode == "full"
        settings = np.array(
            [
                nu,
                spec.policy_len,
                bool(spec.use_utility),
                bool(spec.use_states_info_gain),
                full,
                spec.action_selection == "stochastic",
            ],
            dtype=np.int64,
        )
        self._model = Model(
            A=A,
            lnA=lnA,
            h=h,
            B=np.ascontiguousarray(Bm, dtype=dt),
            D=np.ascontiguousarray(np.asarray(spec.D[0], dtype=dt)[None]),
            lnC=lnC,
            lnE=np.log(np.asarray(spec.E, dtype=float) + EPS_VAL).astype(dt),
            gamma=gamma,
            alpha=alpha,
            rows=rows,
            first=first,
            settings=settings,
        )
        K = P if full else nu
        self._state = State(
            qs=np.empty((B, ns), dt),
            action=np.full(B, -1, np.int64),
            G=np.zeros((B, P), dt),
            q_pi=np.zeros((B, P), dt),
            p=np.zeros((B, K), dt),
            pick=np.zeros(B, np.int32),
        )
        #: model fields held per agent (leading axis B): learnt A (and h), learnt B, per-agent C, gamma, alpha
        self._own_fields = [
            name
            for name, given in (
                ("A", pA is not None),
                ("h", pA is not None),
                ("B", pB is not None),
                ("lnC", "C" in per_agent),
                ("gamma", "gamma" in per_agent),
                ("alpha", "alpha" in per_agent),
            )
            if given
        ]
        self._action_of = spec.policies[:, 0, :] if full else np.arange(nu)[:, None]
        self._learn_modalities = np.isin(np.arange(self.num_modalities), self.modalities_to_learn)
        self._no_obs = np.zeros((0, self.num_modalities), np.int64)
        self._no_uniforms = np.zeros(0, np.float64)
        self.reset()

    # ---- construction helpers ------------------------------------------------------------------

    @staticmethod
    def _row_bounds(num_obs):
        ends = np.cumsum(num_obs)
        return ends - np.asarray(num_obs), ends

    def _per_agent_stack(self, given, shared, name, shapes):
        """(B, rows, ...) per-agent concentrations, modalities stacked along the rows: from a list of
        per-agent arrays, else the shared ones copied to every agent, else None."""
        B = self.batch_size
        if given is not None:
            arrays = (
                list(given)
                if isinstance(given, (list, tuple)) or getattr(given, "dtype", None) == np.dtype(object)
                else [given]
            )
            if len(arrays) != len(shapes):
                raise ValueError(f"per_agent {name} must hold {len(shapes)} arrays, got {len(arrays)}")
            for k, (array, shape) in enumerate(zip(arrays, shapes)):
                if np.shape(array) != (B, *shape):
                    raise ValueError(f"per_agent {name}[{k}] has shape {np.shape(array)}, expected {(B, *shape)}")
                if np.any(np.asarray(array) < 0) or not np.all(np.isfinite(array)):
                    raise ValueError(f"per_agent {name}[{k}] must be finite and non-negative")
                if np.any(np.asarray(array).sum(axis=1) <= 0):
                    agent = int(np.argwhere(np.asarray(array).sum(axis=1) <= 0)[0][0])
                    raise ValueError(f"per_agent {name}[{k}] of agent {agent} has a column of zeros (no distribution)")
            stacked = np.concatenate([np.asarray(a, dtype=float) for a in arrays], axis=1)
        elif shared is not None:
            stacked = np.concatenate([np.asarray(a, dtype=float) for a in shared])[None].repeat(B, axis=0)
        else:
            return None
        return stacked

    def _per_agent_scalar(self, value, name):
        array = np.atleast_1d(np.asarray(value, dtype=self.dtype))
        if array.ndim != 1 or array.shape[0] not in (1, self.batch_size) or not np.all(np.isfinite(array)):
            raise ValueError(
                f"{name} must be a finite number or an array of {self.batch_size} (one per agent), "
                f"got shape {np.shape(value)}"
            )
        return np.ascontiguousarray(array)

    def _log_preferences(self, c, n, m):
        """ln(softmax(C_m) + 1e-16) over the outcomes (last axis), per agent if C_m is (B, No_m)."""
        c = np.asarray(c, dtype=float)
        if c.shape[-1] != n or c.ndim not in (1, 2) or (c.ndim == 2 and c.shape[0] != self.batch_size):
            raise ValueError(f"C[{m}] has shape {c.shape}; expected ({n},) or per agent ({self.batch_size}, {n})")
        e = np.exp(c - c.max(axis=-1, keepdims=True))
        return np.log(e / e.sum(axis=-1, keepdims=True) + EPS_VAL)

    @classmethod
    def supports(cls, options):
        """(True, "") for one hidden-state factor, any modalities and policy length, no parameter
        information gain and time-invariant C; else (False, reason)."""
        if len(options["num_states"]) != 1:
            return False, f"{cls.__name__} runs one hidden-state factor, the model has {len(options['num_states'])}"
        if options.get("use_param_info_gain"):
            return False, f"{cls.__name__} does not compute parameter information gain"
        C = options.get("C")
        if C is not None and any(np.ndim(c) != 1 for c in C):
            return False, f"{cls.__name__} takes C as one vector per modality (no time-varying C)"
        return True, ""

    # ---- stepping --------------------------------------------------------------------------------

    def _run(self, observations, stages, uniforms=None):
        """One compiled call of ``stages``; returns the number of agents left to draw."""
        uniforms = self._no_uniforms if uniforms is None else uniforms
        if self.threads > 1:
            numba.set_num_threads(self.threads)
            chunks = min(self.batch_size, 4 * self.threads)
            left = _step_parallel(self._model, self._state, observations, uniforms, stages, chunks)
        else:  # the serial build: no thread pool to set
            left = _step_serial(self._model, self._state, observations, uniforms, stages, 1)
        if left < 0:
            self._check_range(observations)
        return left

    def _observations(self, observations):
        """(B, M) int64, C-contiguous; the range is checked by :meth:`_check_range`."""
        obs = np.asarray(observations)
        if obs.shape != (self.batch_size, self.num_modalities) or obs.dtype.kind not in "iu":
            raise ValueError(
                f"observations must be an integer array of shape ({self.batch_size}, "
                f"{self.num_modalities}) (agents x modalities), got {obs.dtype} {obs.shape}"
            )
        return np.ascontiguousarray(obs, dtype=np.int64)

    def _check_range(self, obs):
        """Raises naming the first agent and modality whose observation is out of range."""
        bad = (obs < 0) | (obs >= np.asarray(self.num_obs))
        if bad.any():
            i, m = np.argwhere(bad)[0]
            raise ValueError(f"observation of agent {i}, modality {m} is {obs[i, m]}, outside 0..{self.num_obs[m] - 1}")

    def _uniforms(self):
        if self.draws == "uniform" and self.action_selection == "stochastic":
            return np.random.random_sample(self.batch_size)
        return None

    def step(self, observations):
        """infer_states, infer_policies and sample_action for every agent (one compiled call, then
        the draws); returns the actions (B, 1) int64."""
        left = self._run(self._observations(observations), POSTERIOR | POLICIES | SELECT, self._uniforms())
        return self._finish_actions(left)

    def infer_states(self, observations):
        """Posterior of every agent from its empirical prior and its observations (B, M)."""
        self._run(self._observations(observations), POSTERIOR)
        return self.qs

    def infer_policies(self):
        """q_pi (B, P) and G (B, P) of every agent from its current qs."""
        self._run(self._no_obs_for_batch(), POLICIES)
        return self.q_pi, self.G

    def sample_action(self):
        """Every agent's action from its q_pi (B, 1) int64, drawn as ``draws`` says."""
        return self._finish_actions(self._run(self._no_obs_for_batch(), SELECT, self._uniforms()))

    def _no_obs_for_batch(self):
        return np.zeros((self.batch_size, self.num_modalities), np.int64)

    def _finish_actions(self, left):
        """Draws for the ``left`` agents the compiled call left (pick -1), in agent order, as pymdp draws
        them (``select_highest``: np.random.choice on a tie; ``np.random.multinomial`` when stochastic)."""
        state = self._state
        for i in np.flatnonzero(state.pick < 0) if left else ():
            if self.action_selection == "deterministic":
                state.pick[i] = select_highest(np.asarray(state.p[i], dtype=np.float64))
            else:
                state.pick[i] = int(np.random.multinomial(1, self._draw_probabilities(state.p[i])).argmax())
            state.action[i] = self._action_of[state.pick[i], 0]
        return state.action[:, None].copy()

    def _draw_probabilities(self, p):
        """What ``np.random.multinomial`` draws from: p itself (float64), as the numba engine."""
        return p

    # ---- learning --------------------------------------------------------------------------------

    def _learn(self, observations, qs_prev, name):
        if (self._pA if name == "pA" else self._pB) is None:
            raise TypeError(f"update_{name[1]} needs {name} (give pA/pB to the constructor)")
        numba.set_num_threads(self.threads)
        kernel = _learn_parallel if self.threads > 1 else _learn_serial
        chunks = min(self.batch_size, 4 * self.threads) if self.threads > 1 else 1
        lr = np.array([self.lr_pA, self.lr_pB], dtype=self.dtype)
        pA = self._pA if self._pA is not None else np.zeros((0, 0, 0), self.dtype)
        pB = self._pB if self._pB is not None else np.zeros((0, 0, 0, 0), self.dtype)
        kernel(self._model, pA, pB, self._state, observations, qs_prev, self._learn_modalities, lr, chunks)

    def update_A(self, observations):
        """pA_m[o_m] += lr_pA qs [A_m[o_m] > 0] for the modalities to learn, then A = norm(pA), for
        every agent; observations (B, M). Returns pA (per modality, (B, No_m, Ns))."""
        obs = self._observations(observations)
        self._check_range(obs)
        self._learn(obs, self._state.qs, "pA")
        return self.pA

    def update_B(self, qs_prev):
        """pB[:, :, a] += lr_pB qs (x) qs_prev [B[:, :, a] > 0] with each agent's last action, then
        B = norm(pB); qs_prev: (B, Ns) (or a one-element list of it). Returns pB."""
        if isinstance(qs_prev, (list, tuple)) or getattr(qs_prev, "dtype", None) == np.dtype(object):
            qs_prev = qs_prev[0]
        qs_prev = np.ascontiguousarray(qs_prev, dtype=self.dtype)
        if qs_prev.shape != self._state.qs.shape:
            raise ValueError(f"qs_prev must have shape {self._state.qs.shape}, got {qs_prev.shape}")
        if np.any(self._state.action < 0):
            raise ValueError(
                f"update_B needs every agent's last action; agent {np.argmax(self._state.action < 0)} has none "
                "(call sample_action or step first)"
            )
        if 0 not in self.factors_to_learn:
            return self.pB
        self._learn(self._no_obs, qs_prev, "pB")
        return self.pB

    # ---- beliefs and parameters as arrays ----------------------------------------------------------

    @property
    def qs(self):
        """Posteriors: a list with one (B, Ns) array per factor (a view: copy to keep)."""
        return [self._state.qs]

    @property
    def q_pi(self):
        """(B, P) posterior over policies."""
        return self._state.q_pi

    @property
    def G(self):
        """(B, P) negative expected free energy of each policy."""
        return self._state.G

    @property
    def action(self):
        """(B, 1) int64 last actions (-1 before the first)."""
        return self._state.action[:, None]

    @property
    def A(self):
        """Per modality, (No_m, Ns) shared, or (B, No_m, Ns) once learnt per agent, in legacy's layout (views)."""
        A = self._model.A if self._pA is not None else self._model.A[0]
        return [np.swapaxes(A[..., r0:r1], -1, -2) for r0, r1 in zip(*self._row_bounds(self.num_obs))]

    @property
    def B(self):
        """[(Ns, Ns, Nu)] shared, or [(B, Ns, Ns, Nu)] per agent, in legacy's layout (a view)."""
        B = self._model.B[..., : self.num_states[0]]
        return [B.transpose(0, 3, 2, 1) if self._pB is not None else B[0].transpose(2, 1, 0)]

    @property
    def pA(self):
        """Per modality (B, No_m, Ns) concentrations in legacy's layout (views), or None."""
        if self._pA is None:
            return None
        return [self._pA[:, :, r0:r1].transpose(0, 2, 1) for r0, r1 in zip(*self._row_bounds(self.num_obs))]

    @property
    def pB(self):
        """[(B, Ns, Ns, Nu)] concentrations in legacy's layout (a view), or None."""
        return None if self._pB is None else [self._pB[..., : self.num_states[0]].transpose(0, 3, 2, 1)]

    def reset(self):
        """Every agent back to uniform qs and no action (the next prior is D)."""
        ns = self.num_states[0]
        self._state.qs[:] = 1.0 / ns
        self._state.action[:] = -1

    def memory(self):
        """Bytes: ``shared`` (the model, held once), ``per_agent`` (everything held per agent -- beliefs,
        action probabilities, actions, per-agent parameters, learnt A/B -- divided by B) and
        ``beliefs_and_parameters`` (per agent, the least an agent needs: qs, q_pi and its own
        parameters -- pA, pB, C, gamma, alpha where given per agent)."""
        own = [getattr(self._model, name) for name in self._own_fields]
        own += [a for a in (self._pA, self._pB) if a is not None]
        shared = [a for name, a in self._model._asdict().items() if name not in self._own_fields]
        item = np.dtype(self.dtype).itemsize
        needed = (
            self.num_states[0]
            + len(self.policies)
            + sum(
                a[0].size for a in own if a is not self._model.A and a is not self._model.h and a is not self._model.B
            )
        )
        return {
            "shared": int(sum(a.nbytes for a in shared)),
            "per_agent": (sum(a.nbytes for a in self._state) + sum(a.nbytes for a in own)) / self.batch_size,
            "beliefs_and_parameters": needed * item,
        }

    def warmup(self):
        """Compile (or load from numba's cache) the kernels for this dtype; seconds taken."""
        t0 = time.perf_counter()
        probe = type(self)({"A": np.eye(2), "B": np.eye(2)[:, :, None].repeat(2, axis=2)}, 2, threads=self.threads)
        probe.step(np.zeros((2, 1), np.int64))
        return time.perf_counter() - t0

    def close(self):
        """Nothing to release (kept for the batched-runner interface)."""


class BatchedAgent32(BatchedAgent):
    """:class:`BatchedAgent` in float32 (model, beliefs and kernels); tolerance as the float32
    engine's (1e-4, see ``engines/float32.py``). Draws renormalise p in float64 first, as that engine."""

    dtype = np.float32

    def _draw_probabilities(self, p):
        """float32 rounding can take the first n-1 entries of p past 1 + 1e-12, which
        ``np.random.multinomial`` refuses: renormalised in float64, as ``engines/float32.py`` does."""
        p = p.astype(np.float64)
        return p / p.sum()
