"""The legacy maths every engine shares: pymdp's constants, its log-softmax preferences, its policy
and joint-action order, its action selection on numpy's global RNG, its Dirichlet normaliser and
the one quirk of its free energy. Written once here; engines import it.

Line numbers refer to inferactively-pymdp 1.0.4, ``pymdp/legacy/``.
"""

import itertools

import numpy as np

#: ``spm_log_single`` stabiliser: ln(x + 1e-16), ``maths.py:17, 300-304``; also ``spm_wnorm`` (``maths.py:317-326``).
EPS_VAL = 1e-16
#: ``spm_MDP_G`` keeps states with q(s) > exp(-16) and logs A as ln(A + exp(-16)), ``maths.py:547, 560``.
EXP_M16 = float(np.exp(-16.0))
#: ln(0 + 1e-16): the log-likelihood of an outcome a state never emits.
LOG_EPS = float(np.log(EPS_VAL))
#: tie tolerance of ``select_highest``, ``control.py:1229``.
TIE_TOL = 1e-8
#: the fixed-point iteration's settings, always these at construction (``agent.py:303-305, 926-927``:
#: the ``inference_params`` keyword is ignored); assign ``agent.inference_params`` to change them.
FPI_DEFAULTS = {"num_iter": 10, "dF": 1.0, "dF_tol": 0.001, "compute_vfe": True}


def softmax(x):
    """``maths.py:363-371`` for a vector."""
    e = np.exp(x - x.max())
    return e / e.sum()


def normalise(array):
    """``norm_dist``: columns divided by their sums, no epsilon (``utils.py:324-326``)."""
    return array / array.sum(axis=0)


def log_preferences(C, horizon):
    """ln(softmax(C_m[:, tau]) + 1e-16) per modality as an (horizon, No_m) array: a 1-D C_m tiled
    over the horizon, a 2-D one read column by column (``control.py:619-661``)."""
    out = []
    for c in C:
        c = np.asarray(c, dtype=float)
        c = np.tile(c[:, None], (1, horizon)) if c.ndim == 1 else c[:, :horizon]
        e = np.exp(c - c.max(axis=0))
        out.append(np.ascontiguousarray(np.log(e / e.sum(axis=0) + EPS_VAL).T))
    return out


def construct_policies(num_controls, policy_len):
    """All policies as a (P, H, F) int array, in legacy's lexicographic order (``control.py:953-993``):
    (t = 0, f = 0) is the most significant digit."""
    digits = [range(n) for n in list(num_controls) * policy_len]
    return np.array(list(itertools.product(*digits)), dtype=np.int64).reshape(-1, policy_len, len(num_controls))


def construct_joint_actions(num_controls):
    """(U, F) int array: joint action u's per-factor actions, factor 0 the most significant digit."""
    return construct_policies(num_controls, 1)[:, 0, :]


def wnorm_masked(p):
    """W(P) [P > 0], W(P) = 1 / sum_0 (P + 1e-16) - 1 / (P + 1e-16) (``maths.py:317-326``, masked as
    ``control.py:764-803``)."""
    stabilised = p + EPS_VAL
    return np.where(p > 0, 1.0 / stabilised.sum(axis=0) - 1.0 / stabilised, 0.0).astype(p.dtype)


def joint_log_likelihood(log_likelihoods, factor_lists, num_states):
    """The log-likelihood whose expectation is the free energy's accuracy term, as legacy builds it
    (``algos/fpi.py:265-272``): each LL_m *reshaped*, not transposed, onto the grid of all factors and
    summed. It differs from the true joint when a factor list is not sorted (legacy's quirk)."""
    joint = np.zeros(tuple(num_states))
    for ll, factors in zip(log_likelihoods, factor_lists):
        dims = [1] * len(num_states)
        for f in factors:
            dims[f] = num_states[f]
        joint = joint + ll.reshape(dims)
    return joint


def select_highest(options):
    """Index of the largest entry; entries within 1e-8 of the max are a tie broken by
    ``np.random.choice`` (``control.py:1215-1234``)."""
    ties = np.flatnonzero(np.abs(options - options.max()) <= TIE_TOL)
    if len(ties) > 1:
        return int(ties[np.random.choice(len(ties))])
    return int(ties[0])


def sample(p):
    """One draw from ``p`` through ``np.random.multinomial``, exactly as ``utils.py:39-42``."""
    p = p.squeeze() if len(p) > 1 else p
    return int(np.where(np.random.multinomial(1, p) == 1)[0][0])


def action_marginals(q_pi, policies, num_controls):
    """P_f(a) = sum of q_pi over policies whose first action on factor f is a, normalised
    (``control.py:1017-1066``). policies: (P, H, F) int array."""
    marginals = []
    for f, n in enumerate(num_controls):
        m = np.bincount(policies[:, 0, f].astype(np.int64), weights=q_pi, minlength=n)
        marginals.append(m / m.sum())
    return marginals


def select_action(q_pi, policies, num_controls, sampling_mode, action_selection, alpha):
    """Legacy ``sample_action``'s choice (``control.py:1017-1066`` marginal, ``1126-1166`` full), with
    numpy's global RNG in the same calls as legacy; returns the action as a float (F,) array."""
    q_pi = np.asarray(q_pi, dtype=float)
    if sampling_mode == "marginal":
        action = np.zeros(len(num_controls))
        for f, p in enumerate(action_marginals(q_pi, policies, num_controls)):
            if action_selection == "deterministic":
                action[f] = select_highest(p)
            elif action_selection == "stochastic":  # any other value leaves 0, as legacy
                action[f] = sample(softmax(np.log(p + EPS_VAL) * alpha))
        return action
    if action_selection == "deterministic":
        index = select_highest(q_pi)
    elif action_selection == "stochastic":
        index = sample(softmax(np.log(q_pi + EPS_VAL) * alpha))
    else:
        raise ValueError(f"action_selection must be 'deterministic' or 'stochastic', got {action_selection!r}")
    return policies[index, 0, :].astype(float)
