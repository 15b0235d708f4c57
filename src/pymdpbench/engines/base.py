"""What every own-kernel engine shares with pymdp's legacy ``Agent``: its constructor, its policies,
its action selection.

Engines subclass :class:`LegacyAgent` and implement ``infer_states``, ``infer_policies``,
``update_A`` and ``update_B`` with their own kernels. Everything that touches the random number
generator stays here, in numpy, and calls numpy's global legacy ``RandomState`` exactly as
``pymdp.legacy.control`` does (``np.random.choice`` on ties, ``np.random.multinomial`` for
stochastic draws), so that an engine seeded like the reference draws the same actions.
Semantics and constants: ``pymdp-legacy-spec.md`` (pymdp 1.0.4, ``pymdp/legacy``).
"""

import numpy as np

from pymdpbench.engines.legacy_math import (EPS_VAL, TIE_TOL, action_marginals, construct_policies,  # noqa: F401
                                            normalise, select_action, select_highest, softmax)

#: Keywords of the legacy Agent that an own-kernel engine accepts only at their default value.
LEGACY_DEFAULTS = {
    "H": None,
    "pD": None,
    "num_controls": None,
    "inference_horizon": 1,
    "control_fac_idx": None,
    "policies": None,
    "inference_algo": "VANILLA",
    "inference_params": None,
    "lr_pD": 1.0,
    "use_BMA": True,
    "policy_sep_prior": False,
    "save_belief_hist": False,
    "sophisticated": False,
}


def as_obj_array(arrays, name):
    """pymdp's object-array convention: a plain ndarray is one factor/modality (squeezed, as ``to_obj_array``)."""
    if arrays is None:
        return None
    if not isinstance(arrays, np.ndarray):
        raise TypeError(f"{name} must be a numpy ndarray or an object array of ndarrays, got {type(arrays).__name__}")
    if arrays.dtype != object:
        out = np.empty(1, dtype=object)
        out[0] = arrays.squeeze()
        return out
    return arrays


def copied(arrays):
    """An object array of copies of the numpy arrays in ``arrays`` (other entries kept as they are)."""
    if arrays is None:
        return None
    return obj_array([a.copy() if isinstance(a, np.ndarray) else a for a in arrays])


def obj_array(items):
    """An object array holding ``items`` (a list of arrays of possibly equal shapes)."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def check_distribution(name, array):
    """Refuse a conditional distribution whose columns do not sum to one, naming the matrix and column.

    Same test as ``legacy/utils.py:337-353`` (``np.allclose``), but the error says where.
    """
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds NaN or inf")
    if np.any(array < 0):
        column = np.argwhere(array < 0)[0]
        raise ValueError(f"{name} has a negative probability at index {tuple(int(i) for i in column)}")
    sums = array.sum(axis=0)
    bad = ~np.isclose(sums, 1.0)
    if np.any(bad):
        column = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} is not normalised: column {column} sums to {sums[column]:.6g}, not 1")


def check_options(agent, other, action_selection, sampling_mode):
    """Refuse legacy keywords the engine does not implement (unless at their default) and unknown
    selection modes, naming them."""
    unsupported = [k for k, v in other.items() if k not in LEGACY_DEFAULTS or v != LEGACY_DEFAULTS[k]]
    if unsupported:
        raise TypeError(f"{type(agent).__module__}.Agent does not support: {', '.join(sorted(unsupported))}")
    if action_selection not in ("deterministic", "stochastic"):
        raise ValueError(f"action_selection must be 'deterministic' or 'stochastic', got {action_selection!r}")
    if sampling_mode not in ("marginal", "full"):
        raise ValueError(f"sampling_mode must be 'marginal' or 'full', got {sampling_mode!r}")


class LegacyAgent:
    """pymdp.legacy's Agent interface and bookkeeping; subclasses supply the numerical kernels.

    Keyword arguments are those of ``pymdp.legacy.agent.Agent``; one an engine does not
    implement raises ``TypeError`` naming it unless it is given at its legacy default.
    """

    #: dtype of beliefs and model arrays; float32 engines override it.
    dtype = np.float64

    def __init__(self, A, B, C=None, D=None, E=None, pA=None, pB=None, policy_len=1,
                 gamma=16.0, alpha=16.0, use_utility=True, use_states_info_gain=True,
                 use_param_info_gain=False, action_selection="deterministic", sampling_mode="marginal",
                 modalities_to_learn="all", factors_to_learn="all", lr_pA=1.0, lr_pB=1.0,
                 A_factor_list=None, B_factor_list=None, **other):
        check_options(self, other, action_selection, sampling_mode)

        # own copies: learning updates pA/pB, and the caller's arrays must stay as given (legacy
        # builds new arrays on each update; an engine that learns in place must not leak it out)
        self.pA = copied(as_obj_array(pA, "pA"))
        self.pB = copied(as_obj_array(pB, "pB"))
        A = as_obj_array(A, "A") if self.pA is None else obj_array([normalise(p) for p in self.pA])
        B = as_obj_array(B, "B") if self.pB is None else obj_array([normalise(p) for p in self.pB])
        for m, a in enumerate(A):
            check_distribution(f"A[{m}]", a)
        for f, b in enumerate(B):
            check_distribution(f"B[{f}]", b)

        self.num_obs = [a.shape[0] for a in A]
        self.num_states = [b.shape[0] for b in B]
        self.num_controls = [b.shape[-1] for b in B]
        self.num_modalities, self.num_factors = len(A), len(B)
        self.A_factor_list = A_factor_list or [list(range(self.num_factors))] * self.num_modalities
        self.B_factor_list = B_factor_list or [[f] for f in range(self.num_factors)]
        for m, factors in enumerate(self.A_factor_list):
            expected = tuple(self.num_states[f] for f in factors)
            if A[m].shape[1:] != expected:
                raise ValueError(f"A[{m}] has shape {A[m].shape}; A_factor_list[{m}]={factors} needs (No, *{expected})")
        for f, factors in enumerate(self.B_factor_list):
            expected = (self.num_states[f], *(self.num_states[g] for g in factors), self.num_controls[f])
            if B[f].shape != expected:
                raise ValueError(f"B[{f}] has shape {B[f].shape}; B_factor_list[{f}]={factors} needs {expected}")
        self.A, self.B = A, B

        self.C = as_obj_array(C, "C") if C is not None else obj_array([np.zeros(n) for n in self.num_obs])
        self.D = as_obj_array(D, "D") if D is not None else obj_array([np.ones(n) / n for n in self.num_states])
        for f, d in enumerate(self.D):
            check_distribution(f"D[{f}]", d)

        self._init_control(policy_len, E, gamma=gamma, alpha=alpha, use_utility=use_utility,
                           use_states_info_gain=use_states_info_gain, use_param_info_gain=use_param_info_gain,
                           action_selection=action_selection, sampling_mode=sampling_mode,
                           modalities_to_learn=modalities_to_learn, factors_to_learn=factors_to_learn,
                           lr_pA=lr_pA, lr_pB=lr_pB)

    def _init_control(self, policy_len, E, modalities_to_learn, factors_to_learn, **settings):
        """Policies, E, the legacy settings of planning, selection and learning, and the initial
        beliefs (uniform qs, no action yet). Needs num_controls, num_states, num_modalities set."""
        self.policy_len = policy_len
        self.policies = construct_policies(self.num_controls, policy_len)
        self.E = np.ones(len(self.policies)) / len(self.policies) if E is None else np.asarray(E, dtype=float)
        if self.E.shape != (len(self.policies),):
            raise ValueError(f"E has shape {self.E.shape}; there are {len(self.policies)} policies")
        for name, value in settings.items():  # gamma, alpha, use_*, action_selection, sampling_mode, lr_*
            setattr(self, name, value)
        self.modalities_to_learn = list(range(self.num_modalities)) if modalities_to_learn == "all" else list(modalities_to_learn)
        self.factors_to_learn = list(range(self.num_factors)) if factors_to_learn == "all" else list(factors_to_learn)
        self.qs = obj_array([np.ones(n, dtype=self.dtype) / n for n in self.num_states])
        self.action = None
        self.q_pi = None
        self.G = None

    @classmethod
    def supports(cls, options):
        """(True, "") if the engine can run a model with these options, else (False, reason).

        ``options`` holds at least ``num_states``, ``num_obs``, ``num_controls``, ``policy_len``.
        """
        return True, ""

    def sample_action(self):
        """Legacy ``sample_action``: marginal or full, deterministic or stochastic, numpy's global RNG."""
        action = select_action(self.q_pi, self.policies, self.num_controls, self.sampling_mode,
                               self.action_selection, self.alpha)
        self.action = action
        return action

    def step_time(self):
        """Kept for interface parity; VANILLA inference has no time-dependent state."""
