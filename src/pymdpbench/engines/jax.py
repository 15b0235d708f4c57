"""pymdp 1.0's own JAX ``Agent`` (``pymdp.agent.Agent``) behind pymdp.legacy's Agent interface.

Every number comes from pymdp's JAX code (``Agent.infer_states``, ``update_empirical_prior``,
``infer_policies``, ``sample_action``, and for learning ``pymdp.learning``, the functions
``Agent.infer_parameters`` calls); this module configures it like legacy and adapts the calls:

* ``batch_size=1``; ``gamma``, ``alpha``, ``sampling_mode``, ``action_selection``, the ``use_*``
  flags, the factor lists and ``lr_pA``/``lr_pB`` are passed as given (legacy's defaults
  ``gamma = alpha = 16`` and ``sampling_mode="marginal"`` differ from JAX's ``1.0`` and ``"full"``).
* ``C`` is passed as ``ln(softmax(C) + 1e-16)``, the log-preferences of legacy's utility
  (``legacy/control.py:619-661``). JAX uses ``C`` raw; raw ``C`` would shift every ``G`` by
  ``H * sum_m logsumexp(C_m)``. A 2-D legacy ``C_m`` (No x T) becomes JAX's (T x No).
* ``num_iter=10``: JAX's fixed-point iteration runs a fixed number of sweeps; legacy stops when
  the free energy changes by less than 1e-3, after at most 10 sweeps (``legacy/agent.py:926``).
  10 is legacy's maximum. With one hidden-state factor both are one exact shot.
* float64: importing this module calls ``jax.config.update("jax_enable_x64", True)`` for the whole
  process, so that the comparison with legacy is not swamped by float32 rounding (~1e-7).

Deviation from ``pymdp.legacy``, measured on 30-step trajectories of 24 seeded random models
(1-2 factors, 2-16 states, 1-2 modalities, H 1-2, density 1 or 0.5) replayed on the reference's
actions, and on 8-256-state models; max over steps (qs | q_pi | |G| / max(1, |G_ref|) | actions):

* one factor, dense A and B, also when learning A and B: 3e-15 | 7e-11 | 3e-6 | none differ;
* one factor, sparse, every observation possible under the prior: 5e-14 | 1.1e-6 | 5e-7 | none;
* one factor, sparse, an observation with p(o) < 1e-12 under the prior: up to 0.1 | 0.4 | 0.09 |
  some differ (2 of 4 sparse one-factor models);
* two factors (fixed 10 sweeps against legacy's dF stop): 0.015-0.24 | 0.002-0.16 | up to 0.07 |
  3 of 12 models;
* use_param_info_gain with pA/pB (digamma spm_wnorm): q_pi up to 1.0, G by O(10), 18 of 20
  actions differ; refused;
* learning on pA/pB with zeros (no [A>0] mask in JAX): qs 0.08, q_pi 0.28, learned B by up to 1.0;
  refused.

* G: JAX computes the state info gain over all states with clip(eps) logs; legacy's
  ``spm_MDP_G`` drops states with q(s) <= exp(-16) and uses ``A ln(A + exp(-16))``. On dense A
  that shifts every G by exactly ``-H * sum_m No_m * exp(-16)`` (``exp(-16) = 1.1e-7``), the same
  for every policy, so q_pi keeps ~1e-11; on sparse A a policy-dependent part of ~1e-7 remains.
* An observation impossible under the prior: the posterior is then set by the stabilisers,
  ``ln(x + 1e-16)`` in legacy, ``ln(clip(x, 2.2e-16))`` in JAX, and the two disagree. It occurs
  when observations are drawn independently of a sparse model, as the gate draws them.
* Two factors: with legacy forced to 10 sweeps (``inference_params["dF_tol"] = -1``) qs agree
  to 2e-14; the whole difference is where legacy stops.
* ``use_param_info_gain`` with pA/pB and learning on pA/pB with zeros are refused (``supports``
  and the constructor). Without pA and pB legacy skips the parameter info gain, and so does this.
* Actions: JAX selects with ``argmax`` (first index; legacy breaks exact ties at random) or draws
  with ``jax.random``, so it cannot reproduce numpy's draws. ``replays_reference_actions`` tells the
  gate to replay this engine on the reference's actions
  (``gate.run_trajectory(..., forced_actions=reference.actions)``): its own action is recorded
  and differing actions are counted, and the next empirical prior uses ``self.action``, which
  the gate sets to the reference's action.

Compilation: each method is one ``jax.jit`` function, compiled at its first call or in
``warmup()``, which returns the seconds it took. The JAX Agent is closed over (passing the Agent
pytree on every call is the slow way, see the performance baseline); an agent with pA or pB
passes A, B, pA, pB as arguments instead, since learning changes them between steps. Each agent
instance compiles its own functions.
"""

import time

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import random as jr  # noqa: E402
from pymdp import learning  # noqa: E402
from pymdp.agent import Agent as JaxAgent  # noqa: E402

from pymdpbench.engines.base import EPS_VAL, LegacyAgent, obj_array  # noqa: E402

#: JAX's fixed number of fixed-point sweeps: legacy's maximum (``legacy/agent.py:926``).
NUM_ITER = 10

#: The model arrays learning can change: kept in JAX form, read as numpy attributes of the same names.
MODEL_FIELDS = ("A", "B", "pA", "pB")


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
    """Attribute ``A``, ``B``, ``pA`` or ``pB``: a numpy object array, converted from the JAX model
    only when read after a change; assigning one replaces it in the JAX model too."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, agent, owner=None):
        if agent is None:
            return self
        cache = agent.__dict__.setdefault("_numpy_model", {})
        if self.name not in cache:
            arrays = agent._model[self.name]
            cache[self.name] = None if arrays is None else obj_array([np.array(x[0]) for x in arrays])
        return cache[self.name]

    def __set__(self, agent, value):
        if "_model" in agent.__dict__:
            agent._replace_model(self.name, value)
        agent.__dict__.setdefault("_numpy_model", {})[self.name] = value


def _density(*dirichlets):
    """Share of non-zero entries over the given pA/pB object arrays (1.0 if there are none)."""
    arrays = [np.asarray(x) for d in dirichlets if d is not None for x in d]
    return float(sum(np.count_nonzero(x) for x in arrays) / sum(x.size for x in arrays)) if arrays else 1.0


def _as_jax(arrays):
    """A legacy object array as a list of float64 JAX arrays."""
    return None if arrays is None else [jnp.asarray(np.asarray(x, dtype=float)) for x in arrays]


def _batched(arrays):
    """A legacy object array as a list of float64 JAX arrays with a leading batch axis of 1."""
    return None if arrays is None else [x[None] for x in _as_jax(arrays)]


class Agent(LegacyAgent):
    """pymdp's JAX ``Agent`` (batch 1, float64) with pymdp.legacy's constructor and methods.

    Extra keyword ``seed``: the ``jax.random`` key of stochastic action selection. If None, it is
    drawn from numpy's global RNG at the first stochastic selection, so ``np.random.seed`` before
    a run makes the run reproducible.
    """

    #: The gate replays this engine on the reference's actions: jax.random cannot draw numpy's.
    replays_reference_actions = True

    #: Gate tolerance on max |qs|, |q_pi| and |G| / max(1, |G_ref|). It covers what configuration
    #: makes equal up to pymdp's stabilisers: one factor with observations possible under the
    #: prior (measured <= 1.1e-6), with room for the G offset H * sum No * 1.1e-7 of larger models.
    #: It does not cover the fixed 10 sweeps on several factors (qs up to 0.24) nor impossible
    #: observations on sparse models: those cells fail the gate with their deviation recorded.
    tolerance = 1e-4

    A = _ModelArray()
    B = _ModelArray()
    pA = _ModelArray()
    pB = _ModelArray()

    def __init__(self, A, B, C=None, D=None, E=None, pA=None, pB=None, policy_len=1, seed=None, **kwargs):
        super().__init__(A, B, C=C, D=D, E=E, pA=pA, pB=pB, policy_len=policy_len, **kwargs)
        self._learns = self.pA is not None or self.pB is not None
        supported, reason = self.supports({"use_param_info_gain": self.use_param_info_gain, "pA": self.pA,
                                           "pB": self.pB, "density": _density(self.pA, self.pB)})
        if not supported:
            raise ValueError(f"{__name__}.Agent does not support {reason}")
        unbatched = {name: _as_jax(getattr(self, name)) for name in MODEL_FIELDS}
        self._jax = JaxAgent(
            C=log_preferences(self.C, policy_len), D=_as_jax(self.D), E=jnp.asarray(self.E, dtype=float),
            **unbatched,
            A_dependencies=self.A_factor_list, B_dependencies=self.B_factor_list,
            policy_len=policy_len, gamma=self.gamma, alpha=self.alpha,
            use_utility=self.use_utility, use_states_info_gain=self.use_states_info_gain,
            # refused above with pA/pB; without them legacy skips it silently and JAX would raise
            use_param_info_gain=False,
            action_selection=self.action_selection, sampling_mode=self.sampling_mode,
            inference_algo="fpi", num_iter=NUM_ITER, batch_size=1,
        )
        self._model = {name: getattr(self._jax, name) for name in MODEL_FIELDS}
        jax_policies = np.asarray(self._jax.policies.policy_arr)
        if not np.array_equal(jax_policies, self.policies):
            raise RuntimeError("pymdp's JAX Agent enumerates policies in another order than legacy")
        self.seed = seed
        self._key = None
        self._draws = 0
        self._qs_jax = [jnp.asarray(q) for q in self.qs]
        self._qs_seen = self.qs
        self._q_pi_jax = self._q_pi_seen = None
        self._compile()

    @classmethod
    def supports(cls, options):
        """(False, reason) for what pymdp's JAX Agent computes differently from legacy by design.

        Reads, when present: ``use_param_info_gain`` together with ``pA``, ``pB`` or a true
        ``learning`` (JAX's digamma spm_wnorm: G differs by O(10)), and ``learning``/``pA``/``pB``
        with ``density < 1`` (JAX learns without legacy's [A>0] mask). Everything else runs; its
        deviation is for the gate to record.
        """
        dirichlet = options.get("pA") is not None or options.get("pB") is not None or bool(options.get("learning"))
        if options.get("use_param_info_gain") and dirichlet:
            return False, ("use_param_info_gain=True with pA/pB: pymdp JAX weights it with the digamma "
                           "spm_wnorm, legacy with 1/sum - 1/a (G differs by O(10))")
        if dirichlet and options.get("density", 1.0) < 1.0:
            return False, ("learning with zeros in pA/pB (density < 1): pymdp JAX adds counts without legacy's "
                           "[A>0]/[B>0] mask, so the zeros fill in")
        return True, ""

    # --- compiled kernels -------------------------------------------------------------------

    def _compile(self):
        """(Re)build the jitted methods; compilation itself happens at their first call."""
        jax_agent = self._jax
        num_modalities = self.num_modalities

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

        def update_A(model, obs, qs):
            pA = [p if m in self.modalities_to_learn else None for m, p in enumerate(model["pA"])]
            qA, E_qA = jax.vmap(lambda pa, a, o, q: learning.update_obs_likelihood_dirichlet(
                pa, a, o, q, A_dependencies=self.A_factor_list, categorical_obs=False,
                num_obs=self.num_obs, lr=self.lr_pA))(
                    pA, model["A"], [obs[m][None, None] for m in range(num_modalities)], [q[None, None] for q in qs])
            return {**model, "A": E_qA, "pA": [new if new is not None else old for new, old in zip(qA, model["pA"])]}

        def update_B(model, qs, qs_prev, action):
            joint = [[qs[f][None, None]] + [qs_prev[g][None, None] for g in self.B_factor_list[f]]
                     for f in range(self.num_factors)]
            qB, E_qB = jax.vmap(lambda pb, b, j, a: learning.update_state_transition_dirichlet(
                pb, b, j, a, num_controls=self.num_controls, lr=self.lr_pB,
                factors_to_update=self.factors_to_learn))(model["pB"], model["B"], joint, action[None, None])
            return {**model, "B": E_qB, "pB": qB}

        self._jit = {name: jax.jit(fn) for name, fn in (
            ("infer_states", infer_states), ("infer_policies", infer_policies),
            ("select_action", select_action), ("update_A", update_A), ("update_B", update_B))}

    def _model_arg(self):
        """The model as a jit argument if it can change, else None (closed over, so constant)."""
        return self._model if self._learns else None

    def _current_qs(self):
        """JAX copy of ``self.qs``, re-made only if ``self.qs`` was replaced from outside."""
        if self.qs is not self._qs_seen:
            self._qs_jax = [jnp.asarray(np.asarray(q, dtype=float)) for q in self.qs]
            self._qs_seen = self.qs
        return self._qs_jax

    def _action_arg(self):
        """``self.action`` as ints, or -1 everywhere before the first action (then the prior is D)."""
        if self.action is None:
            return np.full(self.num_factors, -1, dtype=np.int64)
        return np.asarray(self.action).astype(np.int64)

    def warmup(self):
        """Trace and compile every method this agent can run, without changing its state.

        Returns the seconds it took; later calls run the compiled code.
        """
        t0 = time.perf_counter()
        model, qs = self._model_arg(), self._current_qs()
        obs = np.zeros(self.num_modalities, dtype=np.int64)
        action = np.zeros(self.num_factors, dtype=np.int64)
        jax.block_until_ready(self._jit["infer_states"](model, obs, qs, action))
        q_pi, _ = jax.block_until_ready(self._jit["infer_policies"](model, qs))
        jax.block_until_ready(self._jit["select_action"](q_pi, jr.PRNGKey(0), 0))
        if self.pA is not None:
            jax.block_until_ready(self._jit["update_A"](self._model, obs, qs))
        if self.pB is not None:
            jax.block_until_ready(self._jit["update_B"](self._model, qs, qs, action))
        return time.perf_counter() - t0

    # --- legacy interface -------------------------------------------------------------------

    def infer_states(self, observation):
        """Posterior over hidden states: prior D at the first step, else ``B[..., action] @ qs``."""
        obs = np.asarray(observation, dtype=np.int64).reshape(self.num_modalities)
        qs = self._jit["infer_states"](self._model_arg(), obs, self._current_qs(), self._action_arg())
        self._qs_jax = qs
        self.qs = obj_array([np.array(q) for q in qs])  # np.array: a fraction of jax.device_get's cost
        self._qs_seen = self.qs
        return self.qs

    def infer_policies(self):
        """(q_pi, G) from pymdp's JAX ``infer_policies`` on the current posterior; G is the negative EFE."""
        self._q_pi_jax, both = self._jit["infer_policies"](self._model_arg(), self._current_qs())
        self.q_pi, self.G = np.array(both)
        self._q_pi_seen = self.q_pi
        return self.q_pi, self.G

    def sample_action(self):
        """pymdp JAX's own selection on ``self.q_pi``: argmax (deterministic) or a ``jax.random`` draw."""
        if self._key is None:
            seed = self.seed if self.seed is not None else (
                np.random.randint(2**31) if self.action_selection == "stochastic" else 0)
            self._key = jr.PRNGKey(seed)
        q_pi = self._q_pi_jax if self.q_pi is self._q_pi_seen else np.asarray(self.q_pi, dtype=float)
        action = self._jit["select_action"](q_pi, self._key, self._draws)
        self._draws += 1
        self.action = np.asarray(action).astype(float)
        return self.action

    def update_A(self, obs):
        """Add ``lr_pA * onehot(o) x qs`` to pA (modalities_to_learn), then A = E[pA] (pymdp.learning)."""
        if self.pA is None:
            raise ValueError("update_A needs pA: construct the Agent with pA")
        obs = np.asarray(obs, dtype=np.int64).reshape(self.num_modalities)
        self._set_model(self._jit["update_A"](self._model, obs, self._current_qs()))
        return self.pA

    def update_B(self, qs_prev):
        """Add ``lr_pB * qs x qs_prev x onehot(action)`` to pB (factors_to_learn), then B = E[pB]."""
        if self.pB is None:
            raise ValueError("update_B needs pB: construct the Agent with pB")
        if self.action is None:
            raise ValueError("update_B needs self.action: call it after an action was taken")
        qs_prev = [jnp.asarray(np.asarray(q, dtype=float)) for q in qs_prev]
        self._set_model(self._jit["update_B"](self._model, self._current_qs(), qs_prev, self._action_arg()))
        return self.pB

    def _set_model(self, model):
        self._model = model
        self.__dict__["_numpy_model"] = {}

    def _replace_model(self, name, value):
        """An ``A``/``B``/``pA``/``pB`` assigned from outside: into the JAX agent, then recompile."""
        if (value is None) != (self._model[name] is None):
            raise ValueError(f"{name} can be replaced, not added or removed, after construction")
        arrays = _batched(value)
        self._model = {**self._model, name: arrays}
        if arrays is not None:
            self._jax = eqx.tree_at(lambda a: getattr(a, name), self._jax, arrays)
        self._compile()
