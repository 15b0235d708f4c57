"""What every own-kernel engine shares with pymdp's legacy ``Agent``: its constructor and
bookkeeping, its keywords and which of them an engine refuses, its policies, its action selection.

Engines subclass :class:`LegacyAgent`, implement ``infer_states``, ``infer_policies``,
``update_A`` and ``update_B`` with their own kernels, and say how they hold the model by
overriding the storage hooks ``_as_model`` (the constructor's arrays in the engine's form) and
``_expected`` (``norm(pA)`` / ``norm(pB)`` in that form). Everything that touches the random
number generator stays here, in numpy, and calls numpy's global legacy ``RandomState`` exactly as
``pymdp.legacy.control`` does, so that an engine seeded like the reference draws the same actions.

Keywords: :data:`LEGACY_KEYWORDS` is every keyword of ``pymdp.legacy.agent.Agent.__init__``; an
engine lists in ``not_implemented`` the ones it refuses at any value but their legacy default,
with the feature each turns on. The constructor and ``supports(options)`` both ask
:meth:`LegacyAgent.refusals` (plus the engine's :meth:`LegacyAgent.model_refusals`), so they
cannot disagree. Line numbers: inferactively-pymdp 1.0.4, ``pymdp/legacy/``.
"""

import numpy as np

from pymdpbench.engines.legacy_math import (  # noqa: F401
    EPS_VAL,
    FPI_DEFAULTS,
    TIE_TOL,
    action_marginals,
    construct_policies,
    normalise,
    select_action,
    select_highest,
    softmax,
)

#: Every keyword of ``pymdp.legacy.agent.Agent.__init__`` but A and B, with its default
#: (``agent.py:33-76``). Written out so that an engine need not import pymdp (over a second, it
#: pulls in JAX); ``tests/engines/test_sparse.py`` checks it against ``inspect.signature``.
LEGACY_KEYWORDS = {
    "C": None,
    "D": None,
    "E": None,
    "H": None,
    "pA": None,
    "pB": None,
    "pD": None,
    "num_controls": None,
    "policy_len": 1,
    "inference_horizon": 1,
    "control_fac_idx": None,
    "policies": None,
    "gamma": 16.0,
    "alpha": 16.0,
    "use_utility": True,
    "use_states_info_gain": True,
    "use_param_info_gain": False,
    "action_selection": "deterministic",
    "sampling_mode": "marginal",
    "inference_algo": "VANILLA",
    "inference_params": None,
    "modalities_to_learn": "all",
    "lr_pA": 1.0,
    "factors_to_learn": "all",
    "lr_pB": 1.0,
    "lr_pD": 1.0,
    "use_BMA": True,
    "policy_sep_prior": False,
    "save_belief_hist": False,
    "A_factor_list": None,
    "B_factor_list": None,
    "sophisticated": False,
    "si_horizon": 3,
    "si_policy_prune_threshold": 1 / 16,
    "si_state_prune_threshold": 1 / 16,
    "si_prune_penalty": 512,
    "ii_depth": 10,
    "ii_threshold": 1 / 16,
}

#: What an own-kernel engine refuses unless it declares otherwise: keyword -> the legacy feature it
#: turns on. The other keywords are implemented here or stored unused, as legacy does on the VANILLA
#: path (``inference_params`` is overwritten by its defaults, ``agent.py:303-305``; ``use_BMA``,
#: ``policy_sep_prior``, ``si_*`` and ``ii_*`` are read only by MMP, sophisticated or inductive code).
NOT_IMPLEMENTED = {
    "H": "inductive inference",
    "pD": "learning D (update_D)",
    "policies": "custom policies",
    "inference_algo": "marginal message passing (MMP)",
    "inference_horizon": "MMP inference horizons",
    "save_belief_hist": "belief histories (qs_hist, q_pi_hist)",
    "sophisticated": "sophisticated inference",
}


def is_default(name, value):
    """Whether ``value`` is keyword ``name``'s legacy default, without asking an array for its truth value."""
    default = LEGACY_KEYWORDS[name]
    if name == "inference_algo" and value is None:  # agent.py:283-292: None means VANILLA
        return True
    if value is None or default is None:
        return value is default
    if np.ndim(value) != 0 or isinstance(value, (list, tuple, dict)):
        return False
    if isinstance(default, bool):  # legacy tests these flags for truth
        return isinstance(value, (bool, np.bool_, int, np.integer)) and bool(value) is default
    try:
        return bool(value == default)
    except (TypeError, ValueError):
        return False


def describe(value):
    """A short description of a keyword value for an error message (an array by its shape)."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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


def check_factor_lists(name, lists, count, num_factors):
    """``A_factor_list`` (count = modalities) or ``B_factor_list`` (count = factors) as lists of ints, its
    legacy default when None (every factor; each factor itself, ``agent.py:150, 178``), checked."""
    if lists is None:
        lists = [list(range(num_factors))] * count if name == "A_factor_list" else [[f] for f in range(num_factors)]
    lists = [[int(g) for g in factors] for factors in lists]
    if len(lists) != count or any(not fs or not all(0 <= g < num_factors for g in fs) for fs in lists):
        raise ValueError(f"{name}={lists}: needs {count} non-empty lists of factor indices below {num_factors}")
    return lists


def resolve_indices(value, count):
    """``modalities_to_learn`` / ``factors_to_learn`` as a list: "all" is every index (``learning.py:101-102``)."""
    return list(range(count)) if isinstance(value, str) and value == "all" else [int(i) for i in value]


class LegacyAgent:
    """pymdp.legacy's Agent interface and bookkeeping; subclasses supply the numerical kernels.

    Keyword arguments are those of ``pymdp.legacy.agent.Agent`` (:data:`LEGACY_KEYWORDS`); one the
    engine lists in ``not_implemented`` raises ``TypeError`` naming it unless given at its legacy
    default, an unknown one raises ``TypeError`` as Python would.
    """

    #: dtype of beliefs and model arrays; float32 engines override it.
    dtype = np.float64
    #: keyword -> feature refused at any value but the legacy default (see :data:`NOT_IMPLEMENTED`).
    not_implemented = NOT_IMPLEMENTED

    def __init__(self, A, B, **kwargs):
        unknown = sorted(set(kwargs) - set(LEGACY_KEYWORDS))
        if unknown:
            raise TypeError(f"{type(self).__module__}.Agent got unexpected keyword arguments: {', '.join(unknown)}")
        refused = self.refusals(kwargs)
        if refused:
            raise TypeError(f"{type(self).__module__}.Agent does not support: " + "; ".join(refused))
        o = {**LEGACY_KEYWORDS, **kwargs}
        if o["action_selection"] not in ("deterministic", "stochastic"):
            raise ValueError(f"action_selection must be 'deterministic' or 'stochastic', got {o['action_selection']!r}")
        if o["sampling_mode"] not in ("marginal", "full"):
            raise ValueError(f"sampling_mode must be 'marginal' or 'full', got {o['sampling_mode']!r}")

        A, B, pA, pB = self._as_model(A, B, o["pA"], o["pB"], o["A_factor_list"], o["B_factor_list"])
        self._set_shapes(A, B, o)
        refused = self.model_refusals(
            {
                **kwargs,
                "num_states": self.num_states,
                "num_obs": self.num_obs,
                "num_controls": self.num_controls,
                "policy_len": o["policy_len"],
            }
        )
        if refused:
            raise TypeError(f"{type(self).__module__}.Agent does not support: " + "; ".join(refused))
        self.pA, self.pB = pA, pB
        self.A, self.B = A, B

        self.C = as_obj_array(o["C"], "C") if o["C"] is not None else obj_array([np.zeros(n) for n in self.num_obs])
        if len(self.C) != self.num_modalities or any(c.shape[0] != n for c, n in zip(self.C, self.num_obs)):
            raise ValueError(f"C has shapes {[c.shape for c in self.C]}; the model has outcomes {self.num_obs}")
        self.pD = copied(as_obj_array(o["pD"], "pD"))
        if o["D"] is not None:
            self.D = as_obj_array(o["D"], "D")
        elif self.pD is not None:  # agent.py:238-242
            self.D = obj_array([normalise(p) for p in self.pD])
        else:
            self.D = obj_array([np.ones(n) / n for n in self.num_states])
        if len(self.D) != self.num_factors or any(d.shape[0] != n for d, n in zip(self.D, self.num_states)):
            raise ValueError(f"D has shapes {[d.shape for d in self.D]}; the model has states {self.num_states}")
        for f, d in enumerate(self.D):
            check_distribution(f"D[{f}]", d)
        self._init_control(o)

    # -- storage hooks ---------------------------------------------------------------------

    def _as_model(self, A, B, pA, pB, A_factor_list, B_factor_list):
        """The constructor's A, B, pA, pB as object arrays in the engine's form, checked as distributions.

        Each entry has ``.shape``, its legacy shape. Dense default: numpy arrays; with pA (pB),
        A = norm(pA) (B = norm(pB)), as legacy's ``reset`` (``agent.py:386-392``). pA and pB are
        copied: learning updates them, and the caller's arrays must stay as given.
        """
        pA = copied(as_obj_array(pA, "pA"))
        pB = copied(as_obj_array(pB, "pB"))
        A = as_obj_array(A, "A") if pA is None else self._expected(pA)
        B = as_obj_array(B, "B") if pB is None else self._expected(pB)
        for m, a in enumerate(A):
            check_distribution(f"A[{m}]", a)
        for f, b in enumerate(B):
            check_distribution(f"B[{f}]", b)
        return A, B, pA, pB

    def _expected(self, counts):
        """``norm_dist_obj_arr(counts)``: the expected A or B of Dirichlet counts, in the engine's form."""
        return obj_array([normalise(p) for p in counts])

    # -- construction ----------------------------------------------------------------------

    def _set_shapes(self, A, B, o):
        """num_obs, num_states, num_controls, the factor lists and ``control_fac_idx``, checked as legacy
        does (``agent.py:131-205``) but with errors that name the array and the list."""
        self.num_obs = [a.shape[0] for a in A]
        self.num_states = [b.shape[0] for b in B]
        num_controls = [b.shape[-1] for b in B]
        if o["num_controls"] is not None and list(o["num_controls"]) != num_controls:
            raise ValueError(f"num_controls={list(o['num_controls'])} differs from B's last axes {num_controls}")
        self.num_controls = num_controls
        self.num_modalities, self.num_factors = len(A), len(B)
        F = self.num_factors
        self.A_factor_list = check_factor_lists("A_factor_list", o["A_factor_list"], self.num_modalities, F)
        self.B_factor_list = check_factor_lists("B_factor_list", o["B_factor_list"], F, F)
        for m, factors in enumerate(self.A_factor_list):
            expected = (self.num_obs[m], *(self.num_states[f] for f in factors))
            if tuple(A[m].shape) != expected:
                raise ValueError(f"A[{m}] has shape {tuple(A[m].shape)}; A_factor_list[{m}]={factors} needs {expected}")
        for f, factors in enumerate(self.B_factor_list):
            expected = (self.num_states[f], *(self.num_states[g] for g in factors), self.num_controls[f])
            if tuple(B[f].shape) != expected:
                raise ValueError(f"B[{f}] has shape {tuple(B[f].shape)}; B_factor_list[{f}]={factors} needs {expected}")
        self.A_modality_list = [[m for m in range(self.num_modalities) if f in self.A_factor_list[m]] for f in range(F)]
        self.mb_dict = {"A_factor_list": self.A_factor_list, "A_modality_list": self.A_modality_list}
        if o["control_fac_idx"] is None:
            self.control_fac_idx = [f for f in range(F) if self.num_controls[f] > 1]
        else:
            self.control_fac_idx = [int(f) for f in o["control_fac_idx"]]
            bad = [f for f in self.control_fac_idx if not 0 <= f < F or self.num_controls[f] < 2]
            if bad:
                raise ValueError(
                    f"control_fac_idx={self.control_fac_idx}: factor(s) {bad} have fewer than 2 controls "
                    f"(num_controls={self.num_controls})"
                )

    def _init_control(self, o):
        """Policies, E, the legacy settings of planning, selection and learning, the stored-unused
        keywords, and the initial beliefs and clock (``agent.py:207-316``)."""
        self.policy_len = o["policy_len"]
        if o["policies"] is None:
            self.policies = construct_policies(self.num_controls, self.policy_len)
        else:
            try:
                policies = np.asarray(o["policies"], dtype=np.int64)
            except ValueError:
                raise ValueError(
                    "policies of different lengths are not supported: give every policy the same number of steps"
                ) from None
            if policies.ndim != 3 or policies.shape[2] != self.num_factors:
                raise ValueError(f"policies has shape {policies.shape}; expected (policies, steps, {self.num_factors})")
            if np.any(policies < 0) or np.any(policies >= np.array(self.num_controls)):
                raise ValueError(f"policies hold actions outside num_controls={self.num_controls}")
            self.policies = policies
        E = o["E"]
        self.E = np.ones(len(self.policies)) / len(self.policies) if E is None else np.asarray(E, dtype=float)
        if self.E.shape != (len(self.policies),):
            raise ValueError(f"E has shape {self.E.shape}; there are {len(self.policies)} policies")
        for name in (
            "gamma",
            "alpha",
            "use_utility",
            "use_states_info_gain",
            "use_param_info_gain",
            "action_selection",
            "sampling_mode",
            "lr_pA",
            "lr_pB",
        ):
            setattr(self, name, o[name])
        self.modalities_to_learn = resolve_indices(o["modalities_to_learn"], self.num_modalities)
        self.factors_to_learn = resolve_indices(o["factors_to_learn"], self.num_factors)
        for name in (
            "lr_pD",
            "use_BMA",
            "policy_sep_prior",
            "sophisticated",
            "si_horizon",
            "si_policy_prune_threshold",
            "si_state_prune_threshold",
            "si_prune_penalty",
            "ii_depth",
            "ii_threshold",
        ):
            setattr(self, name, o[name])
        self.H = o["H"]
        self.I = None
        self.inference_algo = "VANILLA" if o["inference_algo"] is None else o["inference_algo"]
        self.inference_horizon = 1 if o["inference_algo"] is None else o["inference_horizon"]
        self.inference_params = dict(FPI_DEFAULTS)  # agent.py:303-305: the keyword is ignored
        self.edge_handling_params = {
            "use_BMA": o["use_BMA"] and not o["policy_sep_prior"],
            "policy_sep_prior": o["policy_sep_prior"],
        }
        if o["save_belief_hist"]:
            self.qs_hist = []
            self.q_pi_hist = []
        self.prev_obs = []
        self.qs = obj_array([np.ones(n, dtype=self.dtype) / n for n in self.num_states])
        self.curr_timestep = 0
        self.action = None
        self.prev_actions = None
        self.q_pi = None
        self.G = None

    # -- what the engine runs --------------------------------------------------------------

    @classmethod
    def refusals(cls, options):
        """One reason per legacy keyword in ``options`` that the engine does not implement at the value given."""
        return [
            f"{name}={describe(options[name])} ({feature})"
            for name, feature in cls.not_implemented.items()
            if name in options and not is_default(name, options[name])
        ]

    @classmethod
    def model_refusals(cls, options):
        """Reasons the engine cannot run a model described by ``options`` beyond its keywords (none here)."""
        return []

    @classmethod
    def supports(cls, options):
        """(True, "") if the engine can run a model with these options, else (False, reason).

        ``options`` holds legacy keywords and the model's sizes (``num_states``, ``num_obs``,
        ``num_controls``, ``policy_len``); the constructor refuses exactly what this refuses.
        """
        reasons = cls.refusals(options) + cls.model_refusals(options)
        return (False, "; ".join(reasons)) if reasons else (True, "")

    # -- legacy bookkeeping ----------------------------------------------------------------

    def _record_qs(self, qs):
        """``infer_states``' history (``agent.py:541-542``): qs_hist grows when save_belief_hist was set."""
        if hasattr(self, "qs_hist"):
            self.qs_hist.append(qs)

    def _record_q_pi(self, q_pi):
        """``infer_policies``' history (``agent.py:682-685``), with legacy's trimming: beyond
        ``inference_horizon`` entries keep the last ``inference_horizon - 1`` (all of them when that is 0)."""
        if hasattr(self, "q_pi_hist"):
            self.q_pi_hist.append(q_pi)
            if len(self.q_pi_hist) > self.inference_horizon:
                self.q_pi_hist = self.q_pi_hist[-(self.inference_horizon - 1) :]

    def reset(self, init_qs=None):
        """Legacy ``reset`` (``agent.py:349-394``, VANILLA): uniform (or given) qs, time 0, and
        A = norm(pA), B = norm(pB) when they are given. The last action is kept, as in legacy."""
        self.curr_timestep = 0
        self.qs = obj_array([np.ones(n, dtype=self.dtype) / n for n in self.num_states]) if init_qs is None else init_qs
        if self.pA is not None:
            self.A = self._expected(self.pA)
        if self.pB is not None:
            self.B = self._expected(self.pB)
        return self.qs

    def step_time(self):
        """Legacy ``step_time`` (``agent.py:396-418``, VANILLA): record the action, advance time."""
        if self.prev_actions is None:
            self.prev_actions = [self.action]
        else:
            self.prev_actions.append(self.action)
        self.curr_timestep += 1
        return self.curr_timestep

    def sample_action(self):
        """Legacy ``sample_action`` (``agent.py:695-721``): marginal or full, deterministic or
        stochastic, numpy's global RNG; then ``step_time``."""
        action = select_action(
            self.q_pi,
            np.asarray(self.policies),
            self.num_controls,
            self.sampling_mode,
            self.action_selection,
            self.alpha,
        )
        self.action = action
        self.step_time()
        return action

    def update_D(self, qs_t0=None):
        """Legacy ``update_D`` (``agent.py:841-886``, VANILLA; ``learning.py:212-249``): pD_f += lr_pD
        * qs_t0_f where pD_f > 0, for f in ``factors_to_learn``; then D = norm(pD). ``qs_t0``
        defaults to ``qs_hist[0]`` (needs ``save_belief_hist=True``)."""
        if self.pD is None:
            raise TypeError("update_D needs pD (Dirichlet counts over D); this agent was built without it")
        if qs_t0 is None:
            if not hasattr(self, "qs_hist") or not self.qs_hist:
                raise ValueError(
                    "update_D without qs_t0 reads qs_hist[0]: build the agent with save_belief_hist=True "
                    "and call infer_states first, or pass qs_t0"
                )
            qs_t0 = self.qs_hist[0]
        pD = copied(self.pD)
        for f in resolve_indices(self.factors_to_learn, self.num_factors):
            seen = pD[f] > 0
            pD[f][seen] += self.lr_pD * np.asarray(qs_t0[f], dtype=float)[seen]
        self.pD = pD
        self.D = obj_array([normalise(p) for p in pD])
        return pD

    def set_latest_beliefs(self, last_belief=None):
        """MMP's edge handling (``agent.py:420-451``): not part of VANILLA inference."""
        raise NotImplementedError(f"{type(self).__module__}.Agent runs VANILLA inference; set_latest_beliefs is MMP's")

    def get_future_qs(self):
        """MMP's policy-conditioned beliefs (``agent.py:453-476``): not part of VANILLA inference."""
        raise NotImplementedError(f"{type(self).__module__}.Agent runs VANILLA inference; get_future_qs is MMP's")
