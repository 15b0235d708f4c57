"""The correctness gate: replay one observation sequence through an engine and compare it with the
reference trajectory of pymdp's legacy Agent.

Same choices: every engine's ``sample_action`` draws from numpy's global legacy RNG the way
pymdp.legacy does, so seeding it with the same ``action_seed`` gives the same actions on the same
beliefs. An engine that cannot (JAX) is replayed on the reference's actions (``forced_actions``):
its own action is recorded and counted when it differs, but the next empirical prior uses the
reference action, so later steps compare beliefs about the same trajectory.

Exact ties: where pymdp's deterministic choice had several actions (or policies) within its tie
tolerance of the best, it picks one with ``np.random.choice``; any of the tied choices is right.
The reference marks those steps (``ties``), and a different action there is not counted as a
difference: own-kernel engines reproduce pymdp's draw anyway, and JAX takes the first tied one.
"""

import copy
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from pymdpbench.engines.base import TIE_TOL, action_marginals


@dataclass
class Trajectory:
    """Per step t: qs (all factors concatenated), q_pi, G, the chosen action, and whether that
    choice was an exact tie broken at random."""

    qs: np.ndarray  # (T, sum Ns)
    q_pi: np.ndarray  # (T, P)
    G: np.ndarray  # (T, P)
    actions: np.ndarray  # (T, F) int
    ties: np.ndarray  # (T,) bool

    def save(self, path, owner=""):
        """Write atomically (temporary file, then rename) as .npz; ``owner`` ("study/cell") is stored
        so that a file moved to another grid point is refused when read."""
        tmp = f"{path}.tmp.{os.getpid()}.npz"
        np.savez(tmp, qs=self.qs, q_pi=self.q_pi, G=self.G, actions=self.actions, ties=self.ties, owner=np.array(owner))
        os.replace(tmp, path)

    def check_shapes(self, source, steps, state_sizes, num_policies, num_factors):
        """Refuse a trajectory whose arrays do not fit the model: ``steps`` gate steps, qs of the
        concatenated ``state_sizes``, q_pi and G of ``num_policies``, one action per factor."""
        expected = {
            "qs": (steps, sum(state_sizes)),
            "q_pi": (steps, num_policies),
            "G": (steps, num_policies),
            "actions": (steps, num_factors),
            "ties": (steps,),
        }
        for name, shape in expected.items():
            found = getattr(self, name).shape
            if found != shape:
                raise TrajectoryError(
                    f"{source}: {name} has shape {found}, the model needs {shape} "
                    f"({steps} gate steps, states {list(state_sizes)}, {num_policies} policies)"
                )

    def check_finite(self, source):
        """Refuse a trajectory holding NaN or inf, naming the array and the first step."""
        for name in ("qs", "q_pi", "G"):
            bad = ~np.isfinite(getattr(self, name))
            if bad.any():
                step = int(np.argwhere(bad)[0][0])
                raise FloatingPointError(f"{source}: {name} holds NaN or inf at gate step {step}")


class TrajectoryError(ValueError):
    """A reference trajectory file that is unreadable, of another grid point, or does not fit the model;
    or an engine output that does not fit it. The message names the file or the engine."""


#: what a reference file holds: the trajectory's arrays, or only why the point has none
TRAJECTORY_KEYS = ("qs", "q_pi", "G", "actions", "ties")
#: the advice of every reference error: the pipeline removes such a file before the next run
REFERENCE_ADVICE = "delete it and run snakemake again: the standard cell of its grid point writes it anew"


def save_absent_reference(path, reason, owner=""):
    """The reference file of a grid point whose standard cell was skipped: only the reason, so the
    point's other variants still run and record that they have nothing to be compared with."""
    tmp = f"{path}.tmp.{os.getpid()}.npz"
    np.savez(tmp, absent=np.array(reason), owner=np.array(owner))
    os.replace(tmp, path)


def _read_reference(path):
    """{name: array} of a reference file; TrajectoryError naming it if it is not ours."""
    if not zipfile.is_zipfile(path):  # else numpy tries it as a pickle and suggests loading it unsafely
        raise TrajectoryError(
            f"{path}: not a readable reference trajectory (not an .npz archive: corrupt or "
            f"truncated); {REFERENCE_ADVICE}"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as err:  # a damaged .npz raises zipfile, OS, value and pickle errors
        raise TrajectoryError(
            f"{path}: not a readable reference trajectory ({type(err).__name__}: {err}); {REFERENCE_ADVICE}"
        ) from err
    if "absent" not in arrays:
        missing = [k for k in TRAJECTORY_KEYS if k not in arrays]
        if missing:
            raise TrajectoryError(f"{path}: not a reference trajectory (no {', '.join(missing)}); {REFERENCE_ADVICE}")
        shapes = {k: arrays[k].shape for k in TRAJECTORY_KEYS}
        steps = shapes["ties"][:1]
        if (
            len(shapes["ties"]) != 1
            or any(len(shapes[k]) != 2 or shapes[k][:1] != steps for k in TRAJECTORY_KEYS[:4])
            or shapes["q_pi"] != shapes["G"]
        ):
            raise TrajectoryError(f"{path}: arrays of inconsistent shapes {shapes}; {REFERENCE_ADVICE}")
    return arrays


def check_reference_file(path, study, cell):
    """Cheap check of a reference file before the run (format and owner, no model): TrajectoryError if bad."""
    arrays = _read_reference(path)
    owner = str(arrays.get("owner", ""))
    if owner != f"{study}/{cell}":
        raise TrajectoryError(
            f"{path}: reference of {owner or 'an unknown grid point'}, not of {study}/{cell}; {REFERENCE_ADVICE}"
        )
    return arrays


def load_reference(path, study=None, cell=None):
    """(Trajectory, "") from a reference file, or (None, reason) from one written by save_absent_reference.
    With ``study`` and ``cell``, a file of another grid point is refused (:class:`TrajectoryError`)."""
    arrays = check_reference_file(path, study, cell) if study is not None else _read_reference(path)
    if "absent" in arrays:
        return None, str(arrays["absent"])
    return Trajectory(**{k: arrays[k] for k in TRAJECTORY_KEYS}), ""


def observation_sequence(seed, num_obs, num_steps):
    """A seeded (T, M) int array of observations, drawn uniformly per modality."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(n, size=num_steps) for n in num_obs], axis=1)


def run_trajectory(agent, observations, action_seed, learning=None, forced_actions=None):
    """Run the canonical step over ``observations`` and record a :class:`Trajectory`.

    ``learning``: None, "pre" (update_A/update_B after infer_states) or "post" (after
    sample_action, as pymdp's own tests do). ``update_B`` receives the posterior of the previous step.
    """
    np.random.seed(action_seed)
    records = {"qs": [], "q_pi": [], "G": [], "actions": [], "ties": []}
    for t, obs in enumerate(observations):
        obs = [int(o) for o in obs]
        qs_prev = copy.deepcopy(agent.qs)
        qs = current_beliefs(agent, agent.infer_states(obs))
        if learning == "pre":
            _learn(agent, obs, qs_prev, t)
        q_pi, G = agent.infer_policies()
        action = agent.sample_action()
        check_outputs(agent, t, qs, q_pi, G, action)
        records["qs"].append(np.concatenate([np.asarray(q, dtype=float).ravel() for q in qs]))
        records["q_pi"].append(np.asarray(q_pi, dtype=float).ravel())
        records["G"].append(np.asarray(G, dtype=float).ravel())
        records["actions"].append(np.asarray(action, dtype=float).astype(int).ravel())
        records["ties"].append(tied_choice(agent, q_pi))
        if forced_actions is not None:
            agent.action = np.asarray(forced_actions[t], dtype=float)
        if learning == "post":
            _learn(agent, obs, qs_prev, t)
    return Trajectory(**{k: np.array(v) for k, v in records.items()})


def current_beliefs(agent, qs):
    """One belief per factor about the current step: ``qs`` itself, or for MMP (whose ``qs[p][tau][f]``
    holds beliefs per policy over the inference window, ``legacy/agent.py:349-394``) the average over
    policies of the beliefs about the current step, ``qs[p][-(policy_len + 1)]`` (the first belief of
    ``get_future_qs``, ``legacy/agent.py``). q_pi and G, compared too, depend on every policy's beliefs."""
    if getattr(agent, "inference_algo", "VANILLA") != "MMP":
        return qs
    current = [qs_p[-(agent.policy_len + 1)] for qs_p in qs]
    return [np.mean([np.asarray(c[f], dtype=float) for c in current], axis=0) for f in range(len(current[0]))]


def check_outputs(agent, t, qs, q_pi, G, action):
    """Refuse engine output that does not fit the agent's model, before it is compared with anything:
    qs one belief per factor of its size, q_pi and G one entry per policy, and one whole action per
    factor within its controls (an action of 1.9 is not silently taken for 1)."""
    source = f"{type(agent).__module__}:{type(agent).__qualname__}"
    num_states, num_controls, num_policies = list(agent.num_states), list(agent.num_controls), len(agent.policies)

    def refuse(what):
        raise TrajectoryError(f"engine {source}, gate step {t}: {what}")

    sizes = [np.asarray(q).size for q in qs]
    if sizes != num_states:
        refuse(f"infer_states returned beliefs of sizes {sizes}, the model has states {num_states}")
    for name, value in (("q_pi", q_pi), ("G", G)):
        shape = np.shape(value)
        if shape != (num_policies,):
            refuse(f"infer_policies returned {name} of shape {shape}, expected ({num_policies},): one entry per policy")
    action = np.asarray(action)
    if action.shape != (len(num_controls),):
        refuse(
            f"sample_action returned an action of shape {action.shape}, expected ({len(num_controls)},): one per factor"
        )
    if not np.issubdtype(action.dtype, np.number) or np.any(action != np.round(action)):
        refuse(f"sample_action returned {action.tolist()}: actions must be whole numbers")
    if np.any(action < 0) or np.any(action >= np.array(num_controls)):
        refuse(f"sample_action returned {action.tolist()}, outside the controls {num_controls}")


def tied_choice(agent, q_pi):
    """Whether a deterministic choice on ``q_pi`` is an exact tie (several options within pymdp's
    tie tolerance of the best), in the agent's sampling mode."""
    if agent.action_selection != "deterministic":
        return False
    q = np.asarray(q_pi, dtype=float).ravel()
    if agent.sampling_mode == "full":
        candidates = [q]
    else:
        policies = np.asarray(agent.policies).reshape(len(q), -1, len(agent.num_controls))
        candidates = action_marginals(q, policies, agent.num_controls)
    return any(np.count_nonzero(np.abs(c - c.max()) <= TIE_TOL) > 1 for c in candidates)


def _learn(agent, obs, qs_prev, t):
    agent.update_A(obs)
    if t > 0:
        agent.update_B(qs_prev)


def deviation(reference, other):
    """Max absolute deviations of ``other`` from ``reference`` and the number of steps whose action
    differs where the reference's choice was not an exact tie."""
    scale = np.maximum(1.0, np.abs(reference.G))
    differs = np.any(other.actions != reference.actions, axis=1) & ~reference.ties.astype(bool)
    return {
        "dev_qs": float(np.max(np.abs(other.qs - reference.qs))),
        "dev_q_pi": float(np.max(np.abs(other.q_pi - reference.q_pi))),
        "dev_G": float(np.max(np.abs(other.G - reference.G))),
        "dev_G_rel": float(np.max(np.abs(other.G - reference.G) / scale)),
        "n_action_diff": int(np.sum(differs)),
    }


def passes(dev, tolerance):
    """The gate: beliefs, policy posterior and (scaled) G within tolerance, and every action the same."""
    return (
        dev["dev_qs"] <= tolerance
        and dev["dev_q_pi"] <= tolerance
        and dev["dev_G_rel"] <= tolerance
        and dev["n_action_diff"] == 0
    )
