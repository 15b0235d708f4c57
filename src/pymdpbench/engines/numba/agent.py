"""pymdp's legacy ``Agent`` with its hot paths compiled: the numba engine.

The class *is* ``pymdp.legacy.agent.Agent`` (a subclass): its constructor, every keyword, every
method and attribute, its histories and its bookkeeping are pymdp's own. Three methods take a
compiled path when the agent is in the configuration that path computes, and otherwise hand the
call to pymdp's own method:

* ``infer_states``: VANILLA inference (one-shot softmax for one factor, legacy's parallel
  fixed-point iteration for several, ``A_factor_list`` / ``B_factor_list`` included) --
  :func:`kernels.infer_states`; and MMP (marginal message passing with gradient descent, every
  policy, ``policy_sep_prior`` included) where each factor's transitions depend on itself --
  :func:`kernels.mmp_states`.
* ``infer_policies``: every policy list (pymdp's own, ``policies=``, ``num_controls``,
  ``control_fac_idx``), utility, state and parameter information gain --
  :func:`kernels.policy_values`; MMP's G over each policy's inferred future --
  :func:`kernels.sequence_values`; sophisticated inference, the recursive search with pymdp's
  pruning -- :func:`kernels.sophisticated`. Inductive (``H``) planning runs pymdp's code.
* ``sample_action``: the marginal or full choice and its softmax in :func:`kernels.choose`; the
  random draws in numpy, with exactly legacy's calls on numpy's global RNG.

No stale value, by construction: the kernels read pymdp's arrays themselves (reshaped views, not
copies) at every call, so an assignment (``agent.C = ...``) or an in-place edit
(``agent.C[1][1] = 3.0``, ``agent.A[0][:, 2] = ...``) is what the next call computes with, as in
pymdp. The one value kept between calls, the entropy term h = sum_o A ln(A + e^-16), is checked
against a snapshot of A at every call and recomputed where A differs. Views are rebuilt when an
array is replaced (checked by identity); an array that is not C-contiguous in the engine's dtype
(pymdp's T-maze builds a transposed B) is read through a buffer of its own, refilled from it at
every call. The policy arrays are made read-only when first used,
so that editing one in place raises instead of being missed; a replaced policy is seen.

Anything the compiled paths do not cover -- inductive planning, MMP with factor interactions or
without gradient descent, ``distr_obs=True``, out-of-range observations,
inconsistent shapes, learning -- runs pymdp's own method, with pymdp's numbers and pymdp's errors.
(pymdp's MMP prints its likelihood messages at every sweep; the compiled MMP does not.)
"""

import copy
import operator
import time

import numpy as np
from pymdp.legacy.agent import Agent as PymdpAgent

from pymdpbench.engines.legacy_math import FPI_DEFAULTS, select_highest
from pymdpbench.engines.numba import kernels

#: the kernels' (utility, state info gain, pA info gain, pB info gain) switches, made once
_FLAGS = {tuple(bool(b) for b in bits): np.array(bits, dtype=np.bool_) for bits in np.ndindex(2, 2, 2, 2)}


def _c_shape(m, c):
    """C[m] as the kernels read it: (No, 1) for a 1-D C (tiled over the horizon), else (No, T)."""
    if np.ndim(c) not in (1, 2):
        return None  # pymdp reads C[m][:, t]: anything else is for pymdp to handle
    return (np.shape(c)[0], 1) if np.ndim(c) == 1 else np.shape(c)


def _members(source):
    """The items of an object array (or a list) as a list, cheaply (no copies of the items)."""
    return source.tolist() if type(source) is np.ndarray and source.dtype == object else list(source)


def _same_items(members, items):
    """Whether two lists hold the same objects (by identity), in order."""
    return len(members) == len(items) and False not in map(operator.is_, members, items)


class _Views:
    """Kernel-ready arrays of one model field and what they were built from (to know when to rebuild).

    An array that cannot be read as a view (not C-contiguous, another dtype, a list) is read
    through a buffer of its own, refilled from it at every call (``current``): what the kernels
    see is always what the field holds now."""

    __slots__ = ("source", "items", "arrays", "copies")

    def __init__(self, source, items, arrays, copies):
        self.source, self.items, self.arrays, self.copies = source, items, arrays, copies

    def valid_for(self, source):
        """``source`` is the object these views were built from, holding the same items."""
        if source is not self.source:
            return False
        return _same_items(_members(source), self.items)

    def current(self):
        """The arrays, the buffered ones refilled from their sources; None when a source no longer
        fits its buffer (then the views are rebuilt)."""
        for item, buffer in self.copies:
            if np.shape(item) != buffer.shape:
                return None
            try:
                np.copyto(buffer, item, casting="unsafe")
            except (TypeError, ValueError):
                return None
        return self.arrays


class Agent(PymdpAgent):
    """``pymdp.legacy.agent.Agent`` with compiled inference, planning and action selection."""

    #: dtype of the kernels' arithmetic; the float32 engine overrides it.
    dtype = np.float64

    #: what the engine keeps between calls (all of it rebuilt on demand)
    _CACHES = (
        "_model_cache",
        "_views",
        "_policy_cache",
        "_entropy",
        "_qs_parts",
        "_c_checked",
        "_controls_cache",
        "_fpi",
    )

    def __getstate__(self):
        """A copy or a pickle of the agent carries no cache: cached views would point into the
        original's arrays, not the copy's."""
        return {k: v for k, v in self.__dict__.items() if k not in self._CACHES}

    def __setstate__(self, state):
        self.__dict__.update(state)

    # ---- kernel-ready views ----------------------------------------------------------------

    def _make_views(self, source, shape_of):
        """A :class:`_Views` of the arrays of one field (A, B, C, pA, pB) reshaped for a kernel:
        views where an array is C-contiguous in the engine's dtype, else buffers refilled at every
        call. ``shape_of(i, array)`` gives the kernel shape, or None when unusable (then None)."""
        items = _members(source)
        arrays, copies = [], []
        for i, item in enumerate(items):
            shape = shape_of(i, item)
            if shape is None:
                return None
            if isinstance(item, np.ndarray) and item.dtype == self.dtype and item.flags.c_contiguous:
                arrays.append(item.reshape(shape))
                continue
            try:
                buffer = np.array(item, dtype=self.dtype, order="C")
            except (TypeError, ValueError):
                return None
            arrays.append(buffer.reshape(shape))
            copies.append((item, buffer))
        return _Views(source, items, tuple(arrays), tuple(copies))

    def _field(self, name, shape_of):
        """The kernel arrays of model field ``name`` (C, pA, pB), their views cached while the same
        arrays are in place; None when unusable."""
        d = self.__dict__
        source = d.get(name)
        cache = d.setdefault("_views", {})
        views = cache.get(name)
        if views is not None and views.valid_for(source):
            arrays = views.current()
            if arrays is not None:
                return arrays
        if source is None:
            return None
        views = cache[name] = self._make_views(source, shape_of)
        return None if views is None else views.current()

    def _structure(self):
        """The model as the kernels read it: its shapes (from B and the factor lists) and the kernel
        views of A and B; None when the model is not one the kernels read safely (pymdp then runs and
        reports). Cached while the same A and B arrays and equal factor lists are in place -- checked
        at every call, by identity for the arrays and by value for the lists."""
        d = self.__dict__
        A, B = d.get("A"), d.get("B")
        cached = d.get("_model_cache")
        if (
            cached is not None
            and A is cached["A_src"]
            and B is cached["B_src"]
            and _same_items(_members(A) + _members(B), cached["items"])
            and d.get("A_factor_list") == cached["afl"]
            and d.get("B_factor_list") == cached["bfl"]
            and self.mb_dict["A_factor_list"] == cached["mb_afl"]
        ):
            if cached["buffered"]:  # arrays read through buffers: refilled, as they are now
                cached["A"] = cached["A_views"].current()
                cached["B"] = cached["B_views"].current()
                if cached["A"] is None or cached["B"] is None:
                    d["_model_cache"] = None
                    return self._structure()
            return cached
        d["_model_cache"] = None
        if A is None or B is None:
            return None
        afl, bfl, mb_afl = d.get("A_factor_list"), d.get("B_factor_list"), self.mb_dict["A_factor_list"]
        try:
            key = (
                tuple(np.shape(b) for b in B),
                [list(fl) for fl in afl],
                [list(fl) for fl in bfl],
                [list(fl) for fl in mb_afl],
            )
        except TypeError:
            return None
        structure = self._build_structure(key)
        if structure is None:
            return None
        a_views = self._make_views(A, structure["a_shape"])
        b_views = self._make_views(B, structure["b_shape"])
        if a_views is None or b_views is None or len(a_views.arrays) != len(structure["a_sizes"]):
            return None
        structure.update(
            A=a_views.current(),
            B=b_views.current(),
            A_views=a_views,
            B_views=b_views,
            A_src=A,
            B_src=B,
            items=a_views.items + b_views.items,
            buffered=bool(a_views.copies or b_views.copies),
            afl=key[1],
            bfl=key[2],
            mb_afl=key[3],
        )
        d["_model_cache"] = structure
        return structure

    def _build_structure(self, key):
        b_shapes, afl, bfl, mb_afl = key
        if b_shapes is None or any(len(s) < 2 for s in b_shapes):
            return None
        num_states = [s[0] for s in b_shapes]
        num_controls = [s[-1] for s in b_shapes]
        F = len(num_states)
        if len(bfl) != F or any(not all(isinstance(g, (int, np.integer)) and 0 <= g < F for g in fl) for fl in bfl):
            return None
        for f, fl in enumerate(bfl):
            if tuple(b_shapes[f]) != (num_states[f], *(num_states[g] for g in fl), num_controls[f]):
                return None

        def deps(factor_lists):
            table = np.zeros((len(factor_lists) + F, F + 1), dtype=np.int64)
            for row, fl in enumerate(list(factor_lists) + bfl):
                if len(fl) > F:
                    return None
                table[row, 0] = len(fl)
                table[row, 1 : 1 + len(fl)] = fl
            return table

        for fl in afl + mb_afl:
            if not fl or not all(isinstance(f, (int, np.integer)) and 0 <= f < F for f in fl):
                return None

        def a_shape(m, a):
            shape = np.shape(a)
            if (
                m >= len(afl)
                or len(shape) < 2
                or any(shape[1:] != tuple(num_states[f] for f in fl[m]) for fl in (afl, mb_afl))
            ):
                return None
            return (shape[0], -1)

        b_shapes = [
            (num_states[f], int(np.prod([num_states[g] for g in fl])), num_controls[f]) for f, fl in enumerate(bfl)
        ]

        def b_shape(f, b):
            return b_shapes[f]

        return {
            "a_shape": a_shape,
            "b_shape": b_shape,
            "num_states": num_states,
            "num_controls": np.array(num_controls, dtype=np.int64),
            "a_sizes": [int(np.prod([num_states[f] for f in fl])) for fl in afl],
            "deps": deps(afl),
            "state_deps": deps(mb_afl),
            "acc_deps": deps([sorted(fl) for fl in mb_afl]),
            "plan_acc_deps": deps([sorted(fl) for fl in afl]),
            "b_sizes": [int(np.prod([num_states[g] for g in fl])) for fl in bfl],
            "no_action": np.zeros(F),
            "total_states": int(sum(num_states)),
        }

    def _vectors(self, arrays, sizes):
        """A tuple of 1-D arrays of the engine's dtype with these sizes (qs, D), or None."""
        if arrays is None or len(arrays) != len(sizes):
            return None
        out = []
        for a, n in zip(arrays, sizes):
            if not isinstance(a, np.ndarray) or a.shape != (n,):
                return None
            out.append(a if a.dtype == self.dtype else a.astype(self.dtype))
        return tuple(out)

    # ---- inference -------------------------------------------------------------------------

    def infer_states(self, observation, distr_obs=False):
        """Legacy ``infer_states`` (``agent.py:478-550``); VANILLA compiled, anything else pymdp's."""
        if not hasattr(self, "qs"):
            self.reset()
        qs = None
        if self.inference_algo == "VANILLA" and not distr_obs:
            qs = self._infer_states_compiled(observation)
        elif self.inference_algo == "MMP" and not distr_obs:
            qs = self._infer_states_mmp(observation)
        if qs is None:
            return super().infer_states(observation, distr_obs)
        if hasattr(self, "qs_hist"):
            self.qs_hist.append(qs)
        self.qs = qs
        return qs

    def _infer_states_compiled(self, observation):
        structure = self._structure()
        fpi = self._fpi_settings()
        if structure is None or fpi is None:
            return None
        A, B = structure["A"], structure["B"]
        obs = np.asarray(observation)
        if obs.dtype != np.int64:
            if obs.dtype.kind not in "iu":
                return None
            obs = obs.astype(np.int64)
        if obs.shape != (len(A),):
            return None
        num_states = structure["num_states"]
        first = self.action is None
        if first:
            prev = self._vectors(self.D, num_states)
            action = structure["no_action"]
        else:
            prev = self._posterior(num_states)
            action = self.action
            if not isinstance(action, np.ndarray) or action.shape != (len(num_states),):
                return None
            if action.dtype != np.float64:
                action = action.astype(np.float64)
        if prev is None:
            return None
        out = np.empty(structure["total_states"], dtype=self.dtype)
        if not kernels.infer_states(
            A, B, prev, first, action, obs, structure["state_deps"], structure["acc_deps"], fpi, out
        ):
            return None  # an outcome or an action out of range: pymdp computes or raises
        qs = np.empty(len(num_states), dtype=object)
        parts = []
        start = 0
        for f, n in enumerate(num_states):
            parts.append(out[start : start + n])
            qs[f] = parts[-1]
            start += n
        self.__dict__["_qs_parts"] = (qs, tuple(parts))
        return qs

    def _infer_states_mmp(self, observation):
        """Legacy MMP ``infer_states`` (``agent.py:521-547``) with ``run_mmp_factorized`` for every policy
        in :func:`kernels.mmp_states`: gradient descent, each factor's transitions on itself only
        (else pymdp runs). pymdp's MMP prints its likelihood messages at every sweep; this does not."""
        structure = self._structure()
        params = self.inference_params
        if (
            structure is None
            or not isinstance(params, dict)
            or set(params) != {"num_iter", "grad_descent", "tau"}
            or params["grad_descent"] is not True
            or structure["bfl"] != [[f] for f in range(len(structure["num_states"]))]
        ):
            return None
        A, B = structure["A"], structure["B"]
        policies = self._policy_array(structure)
        obs_now = np.asarray(observation)
        if (
            policies is None
            or obs_now.dtype.kind not in "iu"
            or obs_now.shape != (len(A),)
            or np.any(obs_now < 0)
            or any(o >= a.shape[0] for o, a in zip(obs_now, A))
        ):
            return None
        window = list(self.prev_obs) + [tuple(observation)]
        actions = self.prev_actions
        if len(window) > self.inference_horizon:
            window = window[-self.inference_horizon :]
            if actions is not None:
                actions = actions[-(self.inference_horizon - 1) :]  # [-0:] keeps every action, as legacy
        try:
            obs = np.array(window, dtype=np.int64).reshape(len(window), len(A))
            prev_actions = (
                np.zeros((0, len(B)), dtype=np.int64)
                if actions is None
                else np.stack(actions, 0).astype(np.int64).reshape(-1, len(B))
            )
        except (TypeError, ValueError):
            return None
        num_states = structure["num_states"]
        separate = self.edge_handling_params["policy_sep_prior"]
        beliefs = self.latest_belief
        prior = [beliefs[p] for p in range(len(policies))] if separate else [beliefs]
        prior = [self._vectors(b, num_states) for b in prior]
        if (
            any(b is None for b in prior)
            or prev_actions.shape[0] < len(window) - 1
            or np.any(obs < 0)
            or np.any(obs >= np.array([a.shape[0] for a in A]))
            or np.any(prev_actions < 0)
            or np.any(prev_actions >= structure["num_controls"])
        ):
            return None
        prior = np.array([np.concatenate(b) for b in prior], dtype=self.dtype)
        P, H = policies.shape[:2]
        qs_out = np.empty((P, len(window) + H, structure["total_states"]), dtype=self.dtype)
        F = np.empty(P, dtype=self.dtype)
        kernels.mmp_states(
            A,
            B,
            obs,
            prev_actions,
            policies,
            prior,
            structure["state_deps"],
            int(params["num_iter"]),
            float(params["tau"]),
            qs_out,
            F,
        )
        self.prev_obs.append(tuple(observation))
        cuts = np.cumsum(num_states)[:-1]
        qs = np.empty(P, dtype=object)
        for p in range(P):
            qs[p] = np.empty(qs_out.shape[1], dtype=object)
            for t in range(qs_out.shape[1]):
                qs[p][t] = np.empty(len(num_states), dtype=object)
                for f, q in enumerate(np.split(qs_out[p, t], cuts)):
                    qs[p][t][f] = q
        self.F = F
        return qs

    def _fpi_settings(self):
        """``inference_params`` as the kernels read them, (num_iter, dF, dF_tol, compute_vfe); None
        when they are not legacy's four settings (pymdp then runs and reports)."""
        params = self.__dict__.get("inference_params")
        if not isinstance(params, dict) or params.keys() != FPI_DEFAULTS.keys():
            return None
        key = (params["num_iter"], params["dF"], params["dF_tol"], params["compute_vfe"])
        cached = self.__dict__.get("_fpi")
        if cached is None or cached[0] != key:
            cached = (key, np.array([key[0], key[1], key[2], bool(key[3])], dtype=self.dtype))
            self.__dict__["_fpi"] = cached
        return cached[1]

    def _posterior(self, num_states):
        """``self.qs`` as kernel input: the views of the last compiled posterior while they are in
        place (an in-place edit of them is in the views), else checked and converted."""
        qs = self.__dict__.get("qs")
        cached = self.__dict__.get("_qs_parts")
        if (
            cached is not None
            and qs is cached[0]
            and len(qs) == len(cached[1])
            and all(map(operator.is_, qs, cached[1]))
        ):
            return cached[1]
        return self._vectors(qs, num_states)

    def infer_policies(self):
        """Legacy ``infer_policies`` (``agent.py:608-693``); VANILLA planning compiled, sophisticated,
        inductive and MMP planning pymdp's."""
        result = None
        if self.inference_algo == "VANILLA" and not self.sophisticated and self.I is None:
            result = self._infer_policies_compiled()
        elif self.inference_algo == "VANILLA" and self.I is None:
            result = self._infer_policies_sophisticated()
        elif self.inference_algo == "MMP" and self.I is None:
            result = self._infer_policies_mmp()
        if result is None:
            return super().infer_policies()
        q_pi, G = result
        if hasattr(self, "q_pi_hist"):
            self.q_pi_hist.append(q_pi)
            if len(self.q_pi_hist) > self.inference_horizon:
                self.q_pi_hist = self.q_pi_hist[-(self.inference_horizon - 1) :]
        self.q_pi = q_pi
        self.G = G
        return q_pi, G

    def _policy_array(self, structure=None):
        """The policies as a (P, H, F) int array, cached while the same policy arrays are in place
        (they are made read-only, so none is edited unseen); None when unusable. Checked against
        the model's factors and actions when ``structure`` is given (``sample_action`` checks them
        against ``num_controls`` instead)."""
        policies = self.policies
        cached = self.__dict__.get("_policy_cache")
        if cached is not None and cached[1].valid_for(policies):
            array = cached[1].arrays
        else:
            try:
                items = _members(policies)
                array = np.array(items, dtype=np.int64)
            except (TypeError, ValueError):
                return None
            if array.ndim != 3 or len(array) == 0 or np.any(array < 0):
                return None
            for item in items:
                if isinstance(item, np.ndarray):
                    item.flags.writeable = False
            cached = self.__dict__["_policy_cache"] = [None, _Views(policies, items, array, ())]
        if structure is None or cached[0] is structure:
            return array
        if array.shape[2] != len(structure["num_states"]) or np.any(array >= structure["num_controls"]):
            return None
        cached[0] = structure
        return array

    def _infer_policies_compiled(self):
        structure = self._structure()
        if structure is None:
            return None
        policies = self._policy_array(structure)
        qs = self._posterior(structure["num_states"])
        if policies is None or qs is None:
            return None
        A, B = structure["A"], structure["B"]
        P, H = policies.shape[:2]
        C = self._field("C", _c_shape)
        checked = self.__dict__.get("_c_checked")
        if checked is None or checked[0] is not C or checked[1] is not A or checked[2] != H:
            if C is None or len(C) != len(A) or any(c.shape[0] != a.shape[0] for c, a in zip(C, A)):
                return None
            if any(c.shape[1] != 1 and c.shape[1] < H for c in C):
                return None  # a 2-D C shorter than the horizon: pymdp raises
            self.__dict__["_c_checked"] = (C, A, H)
        E = np.full(P, 1.0 / P, dtype=self.dtype) if self.E is None else self.E
        if not isinstance(E, np.ndarray) or E.shape != (P,):
            return None
        flags = [bool(self.use_utility), bool(self.use_states_info_gain), False, False]
        pA = pB = None
        if self.use_param_info_gain:
            if self.pA is not None:
                pA = self._field("pA", lambda m, p: (np.shape(p)[0], -1))
                if pA is None or any(p.shape != a.shape for p, a in zip(pA, A)):
                    return None
                flags[2] = True
            if self.pB is not None:
                pB = self._field("pB", lambda f, p: np.shape(B[f]) if np.size(p) == B[f].size else None)
                if pB is None or len(pB) != len(B) or any(p.shape != b.shape for p, b in zip(pB, B)):
                    return None
                flags[3] = True
        flags = _FLAGS[tuple(flags)]
        snapshot, h = self._entropy_cache(A)
        G = np.empty(P, dtype=self.dtype)
        q_pi = np.empty(P, dtype=self.dtype)
        kernels.policy_values(
            A,
            B,
            C,
            snapshot,
            h,
            np.asarray(E, dtype=self.dtype),
            qs,
            policies,
            structure["deps"],
            pA if pA is not None else A,
            pB if pB is not None else B,
            flags,
            float(self.gamma),
            G,
            q_pi,
        )
        return q_pi, G

    def _infer_policies_sophisticated(self):
        """Legacy sophisticated inference (``agent.py:622-639``, ``control.py:1340-1463``) in
        :func:`kernels.sophisticated`: a search of depth ``si_horizon`` over one-step policies, with
        pymdp's pruning thresholds and penalty, gamma 1, and the agent's fixed-point settings."""
        structure = self._structure()
        fpi = self._fpi_settings()
        if structure is None or fpi is None:
            return None
        A, B = structure["A"], structure["B"]
        policies = self._policy_array(structure)
        qs = self._posterior(structure["num_states"])
        if policies is None or qs is None or policies.shape[1] != 1:
            return None
        C = self._field("C", _c_shape)
        if C is None or len(C) != len(A) or any(c.shape[0] != a.shape[0] for c, a in zip(C, A)):
            return None
        snapshot, h = self._entropy_cache(A)
        P = len(policies)
        G = np.empty(P, dtype=self.dtype)
        q_pi = np.empty(P, dtype=self.dtype)
        kernels.sophisticated(
            A,
            B,
            C,
            snapshot,
            h,
            np.concatenate(qs).astype(self.dtype),
            policies,
            structure["deps"],
            structure["plan_acc_deps"],
            fpi,
            int(self.si_horizon),
            float(self.si_policy_prune_threshold),
            float(self.si_state_prune_threshold),
            float(self.si_prune_penalty),
            G,
            q_pi,
        )
        return q_pi, G

    def _infer_policies_mmp(self):
        """Legacy MMP ``infer_policies`` (``agent.py:661-683``): G over each policy's last
        ``policy_len + 1`` beliefs (``get_future_qs``) in :func:`kernels.sequence_values`, and
        q_pi = softmax(gamma G - F + ln E). Not with the parameter information gain, which pymdp's
        MMP path cannot compute (``control.py:254-256`` add an array to one G entry): pymdp runs and
        raises there."""
        structure = self._structure()
        if structure is None or self.use_param_info_gain and (self.pA is not None or self.pB is not None):
            return None
        A = structure["A"]
        policies = self._policy_array(structure)
        F = self.__dict__.get("F")
        qs = self.qs
        P = len(qs) if isinstance(qs, np.ndarray) and qs.dtype == object else -1
        if policies is None or P != len(policies) or not isinstance(F, np.ndarray) or F.shape != (P,):
            return None
        steps = self.policy_len + 1
        num_states = structure["num_states"]
        try:
            future = [qs[p][-steps:] for p in range(P)]
            states = np.array(
                [
                    [np.concatenate([np.asarray(q, dtype=self.dtype) for q in beliefs]) for beliefs in sequence]
                    for sequence in future
                ],
                dtype=self.dtype,
            )
        except (TypeError, ValueError, IndexError):
            return None
        if states.shape != (P, steps, structure["total_states"]):
            return None
        C = self._field("C", _c_shape)
        if (
            C is None
            or len(C) != len(A)
            or any(c.shape[0] != a.shape[0] for c, a in zip(C, A))
            or any(c.shape[1] != 1 and c.shape[1] < steps for c in C)
        ):
            return None
        E = np.full(P, 1.0 / P, dtype=self.dtype) if self.E is None else self.E
        if not isinstance(E, np.ndarray) or E.shape != (P,):
            return None
        flags = _FLAGS[(bool(self.use_utility), bool(self.use_states_info_gain), False, False)]
        snapshot, h = self._entropy_cache(A)
        offsets = np.concatenate([[0], np.cumsum(num_states)]).astype(np.int64)
        G = np.empty(P, dtype=self.dtype)
        q_pi = np.empty(P, dtype=self.dtype)
        kernels.sequence_values(
            A,
            C,
            snapshot,
            h,
            np.asarray(E, dtype=self.dtype),
            F.astype(self.dtype),
            states,
            structure["deps"],
            offsets,
            flags,
            float(self.gamma),
            G,
            q_pi,
        )
        return q_pi, G

    def _entropy_cache(self, A):
        """(snapshot of A, h), packed per modality; reallocated (NaN snapshot: recomputed) when A's shapes change."""
        cache = self.__dict__.get("_entropy")
        if cache is not None and cache[3] is A:
            return cache[1], cache[2]
        shapes = tuple(a.shape for a in A)
        if cache is None or cache[0] != shapes:
            snapshot = np.full(sum(a.size for a in A), np.nan, dtype=self.dtype)
            cache = (shapes, snapshot, np.zeros(sum(a.shape[1] for a in A), dtype=self.dtype))
        self.__dict__["_entropy"] = cache = (*cache[:3], A)
        return cache[1], cache[2]

    def sample_action(self):
        """Legacy ``sample_action`` (``agent.py:695-721``): the choice compiled, the draws numpy's."""
        policies = self._policy_array()
        q_pi = self.q_pi
        if (
            policies is None
            or not isinstance(q_pi, np.ndarray)
            or q_pi.shape != (len(policies),)
            or self.sampling_mode not in ("marginal", "full")
            or self.action_selection not in ("deterministic", "stochastic")
        ):
            return super().sample_action()
        controls = self._controls(policies)
        if controls is None:
            return super().sample_action()
        num_controls, most = controls
        full = self.sampling_mode == "full"
        stochastic = self.action_selection == "stochastic"
        width = len(policies) if full else most
        p = np.empty((len(num_controls), width), dtype=self.dtype)
        picks = kernels.choose(
            np.asarray(q_pi, dtype=self.dtype), policies, num_controls, full, stochastic, float(self.alpha), p
        )
        rows = 1 if full else len(num_controls)
        for f in range(rows):
            if picks[f] < 0:
                probabilities = self._draw_probabilities(p[f, : len(policies) if full else num_controls[f]])
                if stochastic:  # ``utils.sample``, ``utils.py:39-42``
                    picks[f] = int(np.where(np.random.multinomial(1, probabilities) == 1)[0][0])
                else:
                    picks[f] = select_highest(probabilities)
        action = (policies[picks[0], 0, :] if full else picks).astype(float)
        self.action = action
        self.step_time()
        return action

    def _controls(self, policies):
        """(``self.num_controls`` as an int array, its maximum), what pymdp sizes the marginals by;
        None when it does not fit the policies."""
        d = self.__dict__
        try:
            current = list(d.get("num_controls"))
        except TypeError:
            return None
        cached = d.get("_controls_cache")
        if cached is not None and cached[0] is policies and cached[1] == current:
            return cached[2]
        try:
            array = np.array(current, dtype=np.int64)
        except (TypeError, ValueError):
            return None
        if array.shape != (policies.shape[2],) or np.any(policies[:, 0, :].max(axis=0) >= array):
            return None
        d["_controls_cache"] = (policies, current, (array, int(array.max())))
        return array, int(array.max())

    def _draw_probabilities(self, p):
        """The vector legacy's draw sees (float64)."""
        return np.asarray(p, dtype=np.float64)

    # ---- protocol --------------------------------------------------------------------------

    @classmethod
    def supports(cls, options):
        """pymdp's own Agent underneath: every legacy model and keyword runs (MMP, sophisticated and
        inductive planning at pymdp's speed)."""
        return True, ""

    def warmup(self):
        """Compile (or load from numba's on-disk cache) the kernels this agent's calls need -- they are
        specialised on its numbers of factors and modalities -- by one step of a copy of it; seconds
        taken. The agent and numpy's global RNG are left as they were."""
        start = time.perf_counter()
        state = np.random.get_state()
        try:
            twin = copy.deepcopy(self)
            twin.infer_states([0] * len(twin.A))
            twin.infer_policies()
            twin.sample_action()
        finally:
            np.random.set_state(state)
        return time.perf_counter() - start

    @classmethod
    def compile_kernels(cls):
        """Compile (or load from numba's on-disk cache) the kernels for this dtype on tiny models of
        one and two factors; seconds taken. numpy's global RNG is left as it was."""
        from pymdpbench.models import random_model

        start = time.perf_counter()
        state = np.random.get_state()
        try:
            for model_kwargs, agent_kwargs in [
                (dict(num_states=[3], num_obs=[2], num_controls=[2]), {}),
                (
                    dict(num_states=[3], num_obs=[2, 3], num_controls=[2], dirichlet=True),
                    dict(use_param_info_gain=True, policy_len=2, sampling_mode="full", action_selection="stochastic"),
                ),
                (
                    dict(num_states=[2, 3], num_obs=[2], num_controls=[2, 1], dirichlet=True),
                    dict(use_param_info_gain=True),
                ),
            ]:
                model = random_model(0, **model_kwargs)
                agent = cls(**model.agent_kwargs(), **agent_kwargs)
                np.random.seed(0)
                for _ in range(2):
                    agent.infer_states([0] * len(model.num_obs))
                    agent.infer_policies()
                    agent.sample_action()
        finally:
            np.random.set_state(state)
        return time.perf_counter() - start
