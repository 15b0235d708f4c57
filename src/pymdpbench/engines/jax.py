"""pymdp 1.0's own JAX ``Agent`` (``pymdp.agent.Agent``) behind pymdp.legacy's Agent interface.

Every number comes from pymdp's JAX code (``Agent.infer_states``, ``update_empirical_prior``,
``infer_policies``, ``sample_action``, and for learning ``pymdp.learning``, the functions
``Agent.infer_parameters`` calls); this module configures it like legacy and adapts the calls.
What it shares with legacy and what not, with measurements: ``docs/engines-jax.md``.

* ``batch_size=1``; ``gamma``, ``alpha``, ``sampling_mode``, ``action_selection``, the ``use_*``
  flags, the factor lists and ``lr_pA``/``lr_pB`` are passed as given (legacy's defaults
  ``gamma = alpha = 16`` and ``sampling_mode="marginal"`` differ from JAX's ``1.0`` and ``"full"``).
* ``C`` is passed as ``ln(softmax(C) + 1e-16)``, the log-preferences of legacy's utility
  (``legacy/control.py:619-661``). JAX uses ``C`` raw; raw ``C`` would shift every ``G`` by
  ``H * sum_m logsumexp(C_m)``. A 2-D legacy ``C_m`` (No x T) becomes JAX's (T x No).
* ``num_iter = inference_params["num_iter"]`` (10 by default): JAX's fixed-point iteration runs a
  fixed number of sweeps; legacy stops when the free energy changes by less than ``dF_tol``, after
  at most ``num_iter`` sweeps (``legacy/agent.py:923-927``). With one hidden-state factor both are
  one exact shot; with several, legacy's early stop is the whole difference.
* float64: importing this module calls ``jax.config.update("jax_enable_x64", True)`` for the whole
  process, so that the comparison with legacy is not swamped by float32 rounding (~1e-7).
* Learning: pymdp JAX's Dirichlet updates, then legacy's ``[A>0]``/``[B>0]`` mask and norm (JAX
  has neither), so learning on sparse models matches legacy.
* Refused (``supports`` and the constructor): ``use_param_info_gain=True`` (JAX weights it with the
  digamma ``spm_wnorm``) and the legacy keywords listed in :data:`REFUSED`.

Changes after construction. The legacy-facing attributes are plain numpy (object arrays, as in
pymdp legacy). Every public call first compares what its compiled code reads (:data:`READS`) with
what it was built from: settings by value against a deep copy, arrays exactly against a saved copy
(bytes up to 64 KiB, ``np.array_equal`` above; see :func:`_array_key`), ``qs`` and ``q_pi`` too.
A change is applied before the call runs: a new A, B, pA or pB of a learning
agent goes into the jit arguments; any other change rebuilds the JAX Agent and re-jits its
methods, which then compile at their next call. That time is added to ``compile_time_s`` (and
``rebuild_time_s``; ``rebuilds`` counts them). A change this engine cannot apply (see
:data:`FIXED`) raises ``ValueError`` naming the attribute.

Actions: JAX selects with ``argmax`` (first index; legacy breaks exact ties at random) or draws
with ``jax.random``, so it cannot reproduce numpy's draws. ``replays_reference_actions`` tells the
gate to replay this engine on the reference's actions
(``gate.run_trajectory(..., forced_actions=reference.actions)``): its own action is recorded and
differing actions are counted, and the next empirical prior uses ``self.action``, which the gate
sets to the reference's action.

Compilation: each method is one ``jax.jit`` function, compiled at its first call or in
``warmup()``. The JAX Agent is closed over (passing the Agent pytree on every call is the slow
way); an agent with pA or pB passes A, B, pA, pB as arguments instead, since learning changes
them between steps. Each agent instance compiles its own functions.
"""

import copy
import inspect
import operator
import time

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import random as jr  # noqa: E402
from pymdp import learning  # noqa: E402
from pymdp.agent import Agent as JaxAgent  # noqa: E402
from pymdp.legacy.agent import Agent as PymdpLegacyAgent  # noqa: E402

from pymdpbench.engines.base import EPS_VAL, LegacyAgent, obj_array  # noqa: E402

#: Legacy's FPI settings (``legacy/agent.py:923-927``); JAX runs ``num_iter`` sweeps, no dF stop.
DEFAULT_INFERENCE_PARAMS = {"num_iter": 10, "dF": 1.0, "dF_tol": 0.001, "compute_vfe": True}

#: The model arrays learning can change: kept in JAX form, read as numpy attributes of the same names.
MODEL_FIELDS = ("A", "B", "pA", "pB")

#: Keywords of ``pymdp.legacy.agent.Agent.__init__`` with their defaults (the signature itself).
LEGACY_KEYWORDS = {
    name: p.default
    for name, p in inspect.signature(PymdpLegacyAgent.__init__).parameters.items()
    if name not in ("self", "A", "B")
}

#: Keywords passed on to :class:`pymdpbench.engines.base.LegacyAgent` (and so to pymdp's JAX Agent).
IMPLEMENTED = (
    "C",
    "D",
    "E",
    "pA",
    "pB",
    "policy_len",
    "gamma",
    "alpha",
    "use_utility",
    "use_states_info_gain",
    "use_param_info_gain",
    "action_selection",
    "sampling_mode",
    "modalities_to_learn",
    "lr_pA",
    "factors_to_learn",
    "lr_pB",
    "A_factor_list",
    "B_factor_list",
)

#: Keywords legacy stores but does not read on the paths this engine runs (VANILLA inference, no
#: sophisticated or inductive planning, no D learning): any value is stored, unused, as in legacy.
INERT = {
    "inference_params": "legacy overwrites it with its defaults (legacy/agent.py:303-305)",
    "lr_pD": "read only by update_D with pD",
    "use_BMA": "read only by MMP inference",
    "policy_sep_prior": "read only by MMP inference",
    "si_horizon": "read only by sophisticated inference",
    "si_policy_prune_threshold": "read only by sophisticated inference",
    "si_state_prune_threshold": "read only by sophisticated inference",
    "si_prune_penalty": "read only by sophisticated inference",
    "ii_depth": "read only with H",
    "ii_threshold": "read only with H",
    "control_fac_idx": "legacy checks it, then construct_policies ignores it (legacy/control.py:953-993)",
    "num_controls": "accepted when it equals B's last axes, as legacy derives it",
}

#: Legacy keywords refused at any value but their default, with what they would need.
REFUSED = {
    "H": "inductive inference (pymdp JAX builds its I matrix differently)",
    "pD": "learning D (update_D)",
    "inference_horizon": "MMP inference horizons",
    "policies": "custom policies",
    "inference_algo": "MMP inference (only 'VANILLA')",
    "save_belief_hist": "belief histories (qs_hist, q_pi_hist)",
    "sophisticated": "sophisticated inference",
}

#: Why ``use_param_info_gain=True`` is refused, even without pA/pB (where legacy skips it): supports()
#: may be asked without the arrays, and must agree with the constructor.
PARAM_INFO_GAIN = (
    "pymdp JAX weights the parameter information gain with the digamma spm_wnorm, legacy with "
    "1/sum - 1/a: G differs by O(10) with pA/pB"
)

#: Settings the compiled code was built with that cannot change after construction: a change
#: raises ValueError naming it. (policy_len, policies, H: legacy reads them only in its constructor;
#: pD: only update_D, refused.)
FIXED = (
    "policy_len",
    "num_controls",
    "num_obs",
    "num_states",
    "num_factors",
    "num_modalities",
    "A_factor_list",
    "B_factor_list",
    "sophisticated",
    "inference_algo",
    "H",
    "I",
    "pD",
)

#: Settings a change of which rebuilds the JAX agent. lr_pA and lr_pB are jit arguments (read at each call).
REBUILT = (
    "gamma",
    "alpha",
    "use_utility",
    "use_states_info_gain",
    "use_param_info_gain",
    "action_selection",
    "sampling_mode",
    "modalities_to_learn",
    "factors_to_learn",
    "inference_params",
)

#: What each public method's compiled code reads, compared at each of its calls: (settings, by
#: value; model arrays, by content while they have a numpy form, see ``_ModelArray``; other arrays,
#: by content). ``None``: everything (``warmup``).
READS = {
    "infer_states": (
        (
            "inference_params",
            "A_factor_list",
            "B_factor_list",
            "inference_algo",
            "pD",
            "num_obs",
            "num_states",
            "num_factors",
            "num_modalities",
        ),
        ("A", "B"),
        ("D",),
    ),
    "infer_policies": (
        (
            "gamma",
            "use_utility",
            "use_states_info_gain",
            "use_param_info_gain",
            "policy_len",
            "sophisticated",
            "H",
            "I",
            "A_factor_list",
            "B_factor_list",
        ),
        ("A", "B"),
        ("C", "E", "policies"),
    ),
    "sample_action": (("alpha", "action_selection", "sampling_mode", "num_controls", "policy_len"), (), ("policies",)),
    "update_A": (("modalities_to_learn", "A_factor_list"), ("A", "pA"), ()),
    "update_B": (("factors_to_learn", "B_factor_list", "num_controls"), ("B", "pB"), ()),
    None: (REBUILT + FIXED, MODEL_FIELDS, ("C", "D", "E", "policies")),
}
_GET_SETTINGS = {method: operator.attrgetter(*names) for method, (names, _, _) in READS.items()}
ARRAYS = ("A", "B", "C", "D", "E", "pA", "pB", "policies")


def _is_default(value, default):
    """Whether a keyword value equals its legacy default, without numpy's ambiguous truth value."""
    if value is None or default is None:
        return value is default
    if isinstance(value, np.ndarray):
        return value.shape == () and bool(value == default)
    try:
        return bool(value == default)
    except (TypeError, ValueError):
        return False


def _describe(value):
    """A keyword value for an error message: its repr if short, else its type."""
    text = repr(value)
    return text if len(text) <= 40 and not isinstance(value, np.ndarray) else f"a {type(value).__name__}"


def _refusals(options, num_controls=None):
    """Reasons the legacy keywords in ``options`` cannot run here (empty if they all can).

    ``num_controls``: B's last axes, when known (the constructor), to check ``num_controls`` and
    ``control_fac_idx`` as legacy does (``legacy/agent.py:138-204``).
    """
    # REFUSED, and any keyword a later pymdp adds that this module does not know
    unknown = [name for name in LEGACY_KEYWORDS if name not in (*IMPLEMENTED, *INERT, *REFUSED)]
    reasons = [
        f"{name}={_describe(options[name])} ({REFUSED.get(name, 'not implemented by this engine')})"
        for name in (*REFUSED, *unknown)
        if name in options and not _is_default(options[name], LEGACY_KEYWORDS[name])
    ]
    if options.get("use_param_info_gain"):
        reasons.append(f"use_param_info_gain={_describe(options['use_param_info_gain'])} ({PARAM_INFO_GAIN})")
    given = options.get("num_controls")
    if num_controls is not None and given is not None and list(given) != list(num_controls):
        reasons.append(f"num_controls={_describe(given)} (must equal B's last axes {list(num_controls)})")
    controls = num_controls if num_controls is not None else given
    idx = options.get("control_fac_idx")
    if idx is not None and controls is not None:
        bad = [f for f in idx if not 0 <= f < len(controls) or controls[f] < 2]
        if bad:
            reasons.append(f"control_fac_idx={_describe(idx)} (factors {bad} have fewer than 2 actions)")
    return reasons


def _freeze(value):
    """A comparable copy of a value: arrays as (shape, dtype, bytes), containers as tuples.

    Equal frozen values mean equal contents (bytes compared exactly, no hash); being a copy, it
    makes later in-place edits of the original visible.
    """
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return tuple(_freeze(v) for v in value)
        return value.shape, value.dtype.char, value.tobytes()
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _freeze(v)) for k, v in value.items())
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    return _freeze(np.asarray(value))  # numpy/JAX scalars and arrays


#: Arrays up to this size are compared through a bytes copy, larger ones with np.array_equal
#: against a saved copy (no per-call allocation of their size).
SMALL_BYTES = 1 << 16


class _Large:
    """A large array inside a key: equal to another if their contents are (``np.array_equal``)."""

    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array

    def __eq__(self, other):
        return isinstance(other, _Large) and np.array_equal(self.array, other.array)


def _snapshot(x, save):
    if x.nbytes <= SMALL_BYTES:
        return x.shape, x.dtype, x.tobytes()
    return x.shape, x.dtype, _Large(x.copy() if save else x)


def _array_key(value, save=False):
    """:func:`_freeze` of an ndarray or an object array of ndarrays, on a fast path: this is the
    per-call cost of change detection (a bytes copy of each small array, one comparison pass over
    each large one). ``save``: a key to keep (large arrays copied), else one to compare with it."""
    try:
        if value.dtype.kind == "O":  # small arrays inline: this runs several times per step
            return [
                (x.shape, x.dtype, x.tobytes()) if x.nbytes <= SMALL_BYTES else _snapshot(x, save)
                for x in value.tolist()
            ]
        return _snapshot(value, save)
    except AttributeError:  # None, a list, an object array holding lists
        return _freeze(value)


def log_preferences(C, policy_len):
    """Legacy's log-preferences ``ln(softmax(C_m) + 1e-16)`` in JAX's layout: (No,) or (T, No)."""
    out = []
    for c in C:
        c = np.asarray(c, dtype=float)
        e = np.exp(c - c.max(axis=0))
        log_c = np.log(e / e.sum(axis=0) + EPS_VAL)
        out.append(jnp.asarray(log_c if log_c.ndim == 1 else log_c[:, :policy_len].T))
    return out


class _ModelArray:
    """Attribute ``A``, ``B``, ``pA`` or ``pB``: a numpy object array.

    A learning agent keeps its model in JAX form (``agent._model``); the numpy form is made only
    when read after a change, and compared at every call from then on until learning replaces it
    (as legacy replaces ``self.A`` on update, ``legacy/agent.py:775-776``). Assigning stores the
    value; the next call applies it.
    """

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, agent, owner=None):
        if agent is None:
            return self
        views = agent.__dict__.setdefault("_views", {})
        if self.name not in views:
            arrays = agent._model[self.name]
            views[self.name] = None if arrays is None else obj_array([np.array(x[0]) for x in arrays])
            agent._arrays_seen[self.name] = _array_key(views[self.name], save=True)
        return views[self.name]

    def __set__(self, agent, value):
        agent.__dict__.setdefault("_views", {})[self.name] = value


def _batched(arrays):
    """A legacy object array as a list of float64 JAX arrays with a leading batch axis of 1."""
    return None if arrays is None else [jnp.asarray(np.asarray(x, dtype=float))[None] for x in arrays]


class Agent(LegacyAgent):
    """pymdp's JAX ``Agent`` (batch 1, float64) with pymdp.legacy's constructor and methods.

    Extra keyword ``seed``: the ``jax.random`` key of stochastic action selection. If None, it is
    drawn from numpy's global RNG at the first stochastic selection, so ``np.random.seed`` before
    a run makes the run reproducible.

    ``compile_time_s``: seconds spent building the JAX agent and compiling its methods (the first
    call of each compiled method, including that call), construction and rebuilds together;
    ``rebuild_time_s`` and ``rebuilds``: the part and number due to changes after construction.
    The gate tolerance is the registry's (``pymdpbench.engines.TRAITS["jax"]``, 1e-4).
    """

    #: The gate replays this engine on the reference's actions: jax.random cannot draw numpy's.
    replays_reference_actions = True

    A = _ModelArray()
    B = _ModelArray()
    pA = _ModelArray()
    pB = _ModelArray()

    def __init__(self, A, B, *args, seed=None, **kwargs):
        if len(args) > len(LEGACY_KEYWORDS):
            raise TypeError(f"{__name__}.Agent takes at most {len(LEGACY_KEYWORDS) + 2} positional arguments")
        positional = dict(zip(LEGACY_KEYWORDS, args))  # legacy's order: C, D, E, H, pA, pB, pD, ...
        twice = sorted(set(positional) & set(kwargs))
        if twice:
            raise TypeError(f"{__name__}.Agent got multiple values for: {', '.join(twice)}")
        kwargs = {**positional, **kwargs}
        unknown = sorted(set(kwargs) - set(LEGACY_KEYWORDS))
        if unknown:
            raise TypeError(f"{__name__}.Agent got unexpected keyword arguments: {', '.join(unknown)}")
        num_controls = [np.shape(b)[-1] for b in (B if isinstance(B, np.ndarray) and B.dtype == object else [B])]
        reasons = _refusals(kwargs, num_controls)
        if reasons:
            raise TypeError(f"{__name__}.Agent does not support: " + "; ".join(reasons))
        super().__init__(A, B, **{k: v for k, v in kwargs.items() if k in IMPLEMENTED})
        # the legacy attributes of the keywords this engine stores unused (INERT) or refuses (at default)
        for name in (
            "lr_pD",
            "use_BMA",
            "policy_sep_prior",
            "si_horizon",
            "si_policy_prune_threshold",
            "si_state_prune_threshold",
            "si_prune_penalty",
            "H",
            "pD",
            "inference_horizon",
            "inference_algo",
            "sophisticated",
        ):
            setattr(self, name, kwargs.get(name, LEGACY_KEYWORDS[name]))
        self.num_controls = num_controls
        self.control_fac_idx = (
            list(kwargs["control_fac_idx"])
            if kwargs.get("control_fac_idx") is not None
            else [f for f, n in enumerate(num_controls) if n > 1]
        )
        self.inference_params = dict(DEFAULT_INFERENCE_PARAMS)  # legacy/agent.py:303-305 ignores the keyword
        self.I = None
        # legacy/agent.py:279-290 (legacy also warns when both are set)
        self.edge_handling_params = {
            "use_BMA": self.use_BMA and not self.policy_sep_prior,
            "policy_sep_prior": self.policy_sep_prior,
        }
        self.curr_timestep = 0
        self.prev_obs = []
        self.prev_actions = None
        self.seed = seed
        self._key = None
        self._draws = 0
        self._qs_jax = self._qs_seen = self._q_pi_jax = self._q_pi_seen = None
        self.compile_time_s = self.rebuild_time_s = 0.0
        self.rebuilds = 0
        self._arrays_seen = {}
        self._model = {name: None for name in MODEL_FIELDS}
        self._build()

    @classmethod
    def supports(cls, options):
        """(False, reason) for what this engine does not run, else (True, "").

        Reads the legacy keywords in ``options``; refused: :data:`REFUSED` at a non-default value,
        ``use_param_info_gain=True`` and a ``control_fac_idx`` naming a factor with fewer than 2 of
        ``num_controls``. Everything else runs; its deviation is for the gate to record.
        """
        reasons = _refusals(options)
        if reasons:
            return False, "; ".join(reasons)
        return True, ""

    # --- change detection ------------------------------------------------------------------

    def _sync(self, method=None):
        """Apply every change since the last call that ``method``'s compiled code reads (all, if
        None), or refuse it, naming the attribute."""
        names, models, others = READS[method]
        try:
            settings_same = _GET_SETTINGS[method](self) == self._settings_seen[method]
        except (TypeError, ValueError):  # an array-valued setting: compare frozen copies
            settings_same = False
        changed = (
            []
            if settings_same
            else [name for name in names if _freeze(getattr(self, name)) != self._settings_frozen[name]]
        )
        views, seen = self.__dict__["_views"], self._arrays_seen
        for name in models:
            if name in views and _array_key(views[name]) != seen.get(name):
                changed.append(name)
        for name in others:
            if _array_key(getattr(self, name)) != seen[name]:
                changed.append(name)
        if changed:
            self._apply(changed)
        elif not settings_same:  # equal values in new objects (e.g. an equal list assigned)
            self._save_settings()

    def _save_settings(self):
        self._settings_seen = {method: copy.deepcopy(get(self)) for method, get in _GET_SETTINGS.items()}
        self._settings_frozen = {name: _freeze(getattr(self, name)) for name in READS[None][0]}

    def _apply(self, changed):
        fixed = [name for name in changed if name in FIXED or name == "policies"]
        if fixed:
            raise ValueError(
                f"{__name__}.Agent: {', '.join(fixed)} changed after construction; this engine "
                "compiled its model with the old value (construct a new Agent)"
            )
        self._check(changed)
        views = self.__dict__["_views"]
        if self._learns and all(name in MODEL_FIELDS for name in changed):
            self._model = {**self._model, **{name: _batched(views[name]) for name in changed}}
            self._arrays_seen.update({name: _array_key(views[name], save=True) for name in changed})
            return
        self._build(rebuild=True)

    def _expected_shapes(self, name):
        """The shapes the compiled model needs for ``name`` (C: only its first axis)."""
        if name == "A":
            return [(o, *(self.num_states[f] for f in fs)) for o, fs in zip(self.num_obs, self.A_factor_list)]
        if name == "B":
            return [
                (self.num_states[f], *(self.num_states[g] for g in fs), self.num_controls[f])
                for f, fs in enumerate(self.B_factor_list)
            ]
        if name == "C":
            return [(n,) for n in self.num_obs]
        if name == "D":
            return [(n,) for n in self.num_states]
        return [(len(self.policies),)]  # E

    def _check(self, changed=("A", "B", "C", "D", "E")):
        """Refuse a changed array of another shape, and use_param_info_gain, naming the attribute."""
        for name in changed:
            if name not in ("A", "B", "C", "D", "E") or self._current(name) is None:
                continue
            value = self._current(name)
            if name == "E":
                shapes = [np.shape(value)]
            else:
                shapes = [np.shape(x)[:1] if name == "C" else np.shape(x) for x in value]
            if shapes != self._expected_shapes(name):
                raise ValueError(
                    f"{__name__}.Agent: {name} has shapes {shapes}; the model needs {self._expected_shapes(name)}"
                )
        if self.use_param_info_gain:
            raise ValueError(f"{__name__}.Agent does not support use_param_info_gain=True ({PARAM_INFO_GAIN})")

    def _current(self, name):
        """An array attribute, a model array from its numpy form if it has one (no conversion otherwise)."""
        if name not in MODEL_FIELDS:
            return getattr(self, name)
        views = self.__dict__.get("_views", {})
        if name in views:
            return views[name]
        arrays = self._model[name]
        return None if arrays is None else [x[0] for x in arrays]

    # --- building and compiling ------------------------------------------------------------

    def _build(self, rebuild=False):
        """(Re)build the JAX agent from the current attributes and re-jit its methods."""
        t0 = time.perf_counter()
        views = self.__dict__.get("_views", {})
        self._check()
        self._model = {name: _batched(views[name]) if name in views else self._model[name] for name in MODEL_FIELDS}
        self._learns = self._model["pA"] is not None or self._model["pB"] is not None
        num_iter = int(self.inference_params.get("num_iter", DEFAULT_INFERENCE_PARAMS["num_iter"]))
        self._jax = JaxAgent(
            C=log_preferences(self.C, self.policy_len),
            D=[jnp.asarray(np.asarray(d, dtype=float)) for d in self.D],
            E=jnp.asarray(self.E, dtype=float),
            **{name: None if arrays is None else [x[0] for x in arrays] for name, arrays in self._model.items()},
            A_dependencies=self.A_factor_list,
            B_dependencies=self.B_factor_list,
            policy_len=self.policy_len,
            gamma=self.gamma,
            alpha=self.alpha,
            use_utility=self.use_utility,
            use_states_info_gain=self.use_states_info_gain,
            use_param_info_gain=False,  # refused by _check
            action_selection=self.action_selection,
            sampling_mode=self.sampling_mode,
            inference_algo="fpi",
            num_iter=num_iter,
            batch_size=1,
        )
        if not np.array_equal(np.asarray(self._jax.policies.policy_arr), self.policies):
            raise RuntimeError("pymdp's JAX Agent enumerates policies in another order than legacy")
        self._compile()
        self._save_settings()
        self._arrays_seen = {
            name: _array_key(views[name] if name in MODEL_FIELDS else getattr(self, name), save=True)
            for name in ARRAYS
            if name not in MODEL_FIELDS or name in views
        }
        self._fresh = set(self._jit)
        seconds = time.perf_counter() - t0
        self.compile_time_s += seconds
        if rebuild:
            self.rebuilds += 1
            self.rebuild_time_s += seconds

    def _compile(self):
        """Jit the methods over the current JAX agent; compilation happens at their first call."""
        jax_agent = self._jax
        num_modalities = self.num_modalities
        A_factor_list, B_factor_list = self.A_factor_list, self.B_factor_list
        num_obs, num_controls = self.num_obs, self.num_controls
        all_modalities = range(self.num_modalities) if self.modalities_to_learn == "all" else self.modalities_to_learn
        modalities_to_learn = [m for m in range(self.num_modalities) if m in list(all_modalities)]
        factors_to_learn = (
            list(range(self.num_factors)) if self.factors_to_learn == "all" else list(self.factors_to_learn)
        )

        def with_model(model):
            if model is None:
                return jax_agent
            names = [n for n in MODEL_FIELDS if model[n] is not None]
            return eqx.tree_at(lambda a: [getattr(a, n) for n in names], jax_agent, [model[n] for n in names])

        def infer_states(model, obs, qs_prev, action):
            agent = with_model(model)
            first = action[0] < 0
            predicted = agent.update_empirical_prior(jnp.maximum(action, 0)[None], [q[None, None] for q in qs_prev])
            prior = [jnp.where(first, d, p) for d, p in zip(agent.D, predicted)]
            qs = agent.infer_states([obs[m][None] for m in range(num_modalities)], empirical_prior=prior)
            return [q[0, -1] for q in qs]

        def infer_policies(model, qs):
            q_pi, neg_efe = with_model(model).infer_policies([q[None, None] for q in qs])
            return q_pi[0], jnp.concatenate([q_pi, neg_efe])  # one array: one transfer to numpy

        def select_action(q_pi, key, draw):
            return jax_agent.sample_action(q_pi[None], rng_key=jr.fold_in(key, draw)[None])[0]

        # Legacy counts only where the current A (B at the action taken) is non-zero
        # (legacy/learning.py:108, :207), then sets A = norm(qA) for every modality, B = norm(qB)
        # for every factor, without pymdp JAX's clip (legacy/agent.py:775-776, 836-837).
        def update_A(model, obs, qs, lr):
            pA = [p if m in modalities_to_learn else None for m, p in enumerate(model["pA"])]
            qA, _ = jax.vmap(
                lambda pa, a, o, q: learning.update_obs_likelihood_dirichlet(
                    pa, a, o, q, A_dependencies=A_factor_list, categorical_obs=False, num_obs=num_obs, lr=lr
                )
            )(pA, model["A"], [obs[m][None, None] for m in range(num_modalities)], [q[None, None] for q in qs])
            qA = [
                jnp.where(a > 0, q, p) if m in modalities_to_learn else p
                for m, (q, a, p) in enumerate(zip(qA, model["A"], model["pA"]))
            ]
            return {**model, "A": [q / q.sum(axis=1, keepdims=True) for q in qA], "pA": qA}

        def update_B(model, qs, qs_prev, action, lr):
            joint = [
                [qs[f][None, None]] + [qs_prev[g][None, None] for g in B_factor_list[f]]
                for f in range(len(B_factor_list))
            ]
            qB, _ = jax.vmap(
                lambda pb, b, j, a: learning.update_state_transition_dirichlet(
                    pb, b, j, a, num_controls=num_controls, lr=lr, factors_to_update=factors_to_learn
                )
            )(model["pB"], model["B"], joint, action[None, None])
            qB = [
                jnp.where(b > 0, q, p) if f in factors_to_learn else p
                for f, (q, b, p) in enumerate(zip(qB, model["B"], model["pB"]))
            ]
            return {**model, "B": [q / q.sum(axis=1, keepdims=True) for q in qB], "pB": qB}

        self._jit = {
            name: jax.jit(fn)
            for name, fn in (
                ("infer_states", infer_states),
                ("infer_policies", infer_policies),
                ("select_action", select_action),
                ("update_A", update_A),
                ("update_B", update_B),
            )
        }

    def _call(self, name, *args):
        """Run a compiled method; its first run after a (re)build counts as compile time."""
        if name not in self._fresh:
            return self._jit[name](*args)
        t0 = time.perf_counter()
        out = jax.block_until_ready(self._jit[name](*args))
        seconds = time.perf_counter() - t0
        self.compile_time_s += seconds
        if self.rebuilds:
            self.rebuild_time_s += seconds
        self._fresh.discard(name)
        return out

    def _model_arg(self):
        """The model as a jit argument if it can change, else None (closed over, so constant)."""
        return self._model if self._learns else None

    def _current_qs(self):
        """JAX copy of ``self.qs``, re-made if ``self.qs`` was replaced or edited in place."""
        if _array_key(self.qs) != self._qs_seen:
            self._qs_jax = [jnp.asarray(np.asarray(q, dtype=float)) for q in self.qs]
            self._qs_seen = _array_key(self.qs, save=True)
        return self._qs_jax

    def _action_arg(self):
        """``self.action`` as ints, or -1 everywhere before the first action (then the prior is D)."""
        if self.action is None:
            return np.full(self.num_factors, -1, dtype=np.int64)
        return np.asarray(self.action).astype(np.int64)

    def warmup(self):
        """Trace and compile every method this agent can run, without changing its state.

        Returns the seconds it took (also added to ``compile_time_s``); later calls run the compiled code.
        """
        t0 = time.perf_counter()
        self._sync()
        model, qs = self._model_arg(), self._current_qs()
        obs = np.zeros(self.num_modalities, dtype=np.int64)
        action = np.zeros(self.num_factors, dtype=np.int64)
        self._call("infer_states", model, obs, qs, action)
        q_pi, _ = self._call("infer_policies", model, qs)
        self._call("select_action", q_pi, jr.PRNGKey(0), 0)
        if self._model["pA"] is not None:
            self._call("update_A", self._model, obs, qs, float(self.lr_pA))
        if self._model["pB"] is not None:
            self._call("update_B", self._model, qs, qs, action, float(self.lr_pB))
        return time.perf_counter() - t0

    # --- legacy interface -------------------------------------------------------------------

    def infer_states(self, observation, distr_obs=False):
        """Posterior over hidden states: prior D at the first step, else ``B[..., action] @ qs``."""
        if distr_obs:
            raise ValueError(f"{__name__}.Agent does not support distr_obs=True (observations as distributions)")
        self._sync("infer_states")
        obs = np.asarray(observation, dtype=np.int64).reshape(self.num_modalities)
        qs = self._call("infer_states", self._model_arg(), obs, self._current_qs(), self._action_arg())
        self._qs_jax = qs
        self.qs = obj_array([np.array(q) for q in qs])  # np.array: a fraction of jax.device_get's cost
        self._qs_seen = _array_key(self.qs, save=True)
        return self.qs

    def infer_policies(self):
        """(q_pi, G) from pymdp's JAX ``infer_policies`` on the current posterior; G is the negative EFE."""
        self._sync("infer_policies")
        self._q_pi_jax, both = self._call("infer_policies", self._model_arg(), self._current_qs())
        self.q_pi, self.G = np.array(both)
        self._q_pi_seen = _array_key(self.q_pi, save=True)
        return self.q_pi, self.G

    def sample_action(self):
        """pymdp JAX's own selection on ``self.q_pi``: argmax (deterministic) or a ``jax.random`` draw."""
        self._sync("sample_action")
        if self._key is None:
            seed = (
                self.seed
                if self.seed is not None
                else (np.random.randint(2**31) if self.action_selection == "stochastic" else 0)
            )
            self._key = jr.PRNGKey(seed)
        q_pi = self._q_pi_jax if _array_key(self.q_pi) == self._q_pi_seen else np.asarray(self.q_pi, dtype=float)
        action = self._call("select_action", q_pi, self._key, self._draws)
        self._draws += 1
        self.action = np.asarray(action).astype(float)
        self.step_time()
        return self.action

    def update_A(self, obs):
        """Add ``lr_pA * onehot(o) x qs`` to pA (modalities_to_learn), then A = E[pA] (pymdp.learning)."""
        self._sync("update_A")
        if self._model["pA"] is None:
            raise ValueError("update_A needs pA: construct the Agent with pA")
        obs = np.asarray(obs, dtype=np.int64).reshape(self.num_modalities)
        self._set_model(self._call("update_A", self._model, obs, self._current_qs(), float(self.lr_pA)), "A", "pA")
        return self.pA

    def update_B(self, qs_prev):
        """Add ``lr_pB * qs x qs_prev x onehot(action)`` to pB (factors_to_learn), then B = E[pB]."""
        self._sync("update_B")
        if self._model["pB"] is None:
            raise ValueError("update_B needs pB: construct the Agent with pB")
        if self.action is None:
            raise ValueError("update_B needs self.action: call it after an action was taken")
        qs_prev = [jnp.asarray(np.asarray(q, dtype=float)) for q in qs_prev]
        self._set_model(
            self._call("update_B", self._model, self._current_qs(), qs_prev, self._action_arg(), float(self.lr_pB)),
            "B",
            "pB",
        )
        return self.pB

    def update_D(self, qs_t0=None):
        """Refused: learning D needs pD, which this engine does not support."""
        raise ValueError(f"{__name__}.Agent does not support update_D: pD (learning D) is not supported")

    def _set_model(self, model, *names):
        """The model after learning: JAX's arrays are the truth; the numpy forms of the learned
        ``names`` are dropped (made again when read), as legacy replaces them (``legacy/agent.py:775-776``)."""
        self._model = model
        views = self.__dict__.get("_views", {})
        for name in names:
            views.pop(name, None)
            self._arrays_seen.pop(name, None)


class BatchedAgent:
    """pymdp's JAX ``Agent(batch_size=B)``, one jitted call per step for all B agents: empirical
    prior, ``infer_states``, ``infer_policies``, ``sample_action``; configured like :class:`Agent`
    (legacy's gamma, alpha and marginal sampling, log-softmax C, float64). The batched-runner
    interface of ``pymdpbench.engines.batched``: ``(kwargs, batch_size, seed, threads)``, ``step``,
    ``qs``, ``q_pi``, ``action``, ``threads``, ``close``. Actions: argmax (deterministic) or
    ``jax.random`` draws keyed by ``seed``, never numpy's draws. XLA's threads are set by the
    process environment (``harness.apply_threads``), not here: ``threads`` is recorded as given.
    """

    def __init__(self, kwargs, batch_size, seed=None, threads=1):
        policy_len = kwargs.get("policy_len", 1)
        agent = JaxAgent(
            A=[jnp.asarray(a, dtype=float) for a in kwargs["A"]],
            B=[jnp.asarray(b, dtype=float) for b in kwargs["B"]],
            C=log_preferences(kwargs["C"], policy_len),
            D=[jnp.asarray(d, dtype=float) for d in kwargs["D"]],
            A_dependencies=kwargs.get("A_factor_list"),
            B_dependencies=kwargs.get("B_factor_list"),
            policy_len=policy_len,
            gamma=kwargs.get("gamma", 16.0),
            alpha=kwargs.get("alpha", 16.0),
            sampling_mode=kwargs.get("sampling_mode", "marginal"),
            action_selection=kwargs.get("action_selection", "deterministic"),
            inference_algo="fpi",
            num_iter=DEFAULT_INFERENCE_PARAMS["num_iter"],
            batch_size=batch_size,
        )
        num_modalities = len(kwargs["A"])

        def step(qs, action, first, obs, keys):
            predicted = agent.update_empirical_prior(action, [q[:, None] for q in qs])
            prior = [jnp.where(first, d, p) for d, p in zip(agent.D, predicted)]
            qs = agent.infer_states([obs[:, m] for m in range(num_modalities)], empirical_prior=prior)
            qs = [q[:, -1] for q in qs]
            q_pi, _ = agent.infer_policies([q[:, None] for q in qs])
            return qs, q_pi, agent.sample_action(q_pi, rng_key=keys).astype(jnp.int32)  # one dtype: one compilation

        self._step = jax.jit(step)
        self._agent = agent
        self.batch_size = batch_size
        self.threads = threads
        self.qs = list(agent.D)
        self.q_pi = None
        self.action = jnp.zeros((batch_size, len(kwargs["B"])), dtype=jnp.int32)
        self.first = True
        self.keys = jr.split(jr.PRNGKey(0 if seed is None else seed % 2**31), batch_size)

    def step(self, observations):
        self.qs, self.q_pi, self.action = jax.block_until_ready(
            self._step(self.qs, self.action, self.first, jnp.asarray(observations), self.keys)
        )
        self.first = False
        return self.action

    def memory(self):
        """Bytes per agent: pymdp's batched Agent holds every array (A and B included) once per agent."""
        leaves = jax.tree_util.tree_leaves((self._agent, self.qs, self.q_pi, self.action, self.keys))
        return {"per_agent": sum(getattr(x, "nbytes", 0) for x in leaves) / self.batch_size}

    def close(self):
        """Nothing to release."""
