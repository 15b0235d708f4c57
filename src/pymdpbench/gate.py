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
from dataclasses import dataclass

import numpy as np

from pymdpbench.engines.base import TIE_TOL, action_marginals

#: Per-dtype tolerances on max |qs|, |q_pi| and |G| / max(1, |G_ref|) deviation.
#: float64 engines: 1e-10 (pymdp.legacy reproduces itself to ~1e-13). float32 engines: 1e-4
#: (q_pi differs by up to ~6e-5 at float32 resolution). Engines may declare their own ``tolerance``.
TOLERANCE = {"float64": 1e-10, "float32": 1e-4}


@dataclass
class Trajectory:
    """Per step t: qs (all factors concatenated), q_pi, G, the chosen action, and whether that
    choice was an exact tie broken at random."""

    qs: np.ndarray       # (T, sum Ns)
    q_pi: np.ndarray     # (T, P)
    G: np.ndarray        # (T, P)
    actions: np.ndarray  # (T, F) int
    ties: np.ndarray     # (T,) bool

    def save(self, path):
        """Write atomically (temporary file, then rename) as .npz."""
        tmp = f"{path}.tmp.{os.getpid()}.npz"
        np.savez(tmp, qs=self.qs, q_pi=self.q_pi, G=self.G, actions=self.actions, ties=self.ties)
        os.replace(tmp, path)

    def check_finite(self, source):
        """Refuse a trajectory holding NaN or inf, naming the array and the first step."""
        for name in ("qs", "q_pi", "G"):
            bad = ~np.isfinite(getattr(self, name))
            if bad.any():
                step = int(np.argwhere(bad)[0][0])
                raise FloatingPointError(f"{source}: {name} holds NaN or inf at gate step {step}")

    @classmethod
    def load(cls, path):
        with np.load(path) as data:
            return cls(**{k: data[k] for k in ("qs", "q_pi", "G", "actions", "ties")})


def save_absent_reference(path, reason):
    """The reference file of a grid point whose standard cell was skipped: only the reason, so the
    point's other variants still run and record that they have nothing to be compared with."""
    tmp = f"{path}.tmp.{os.getpid()}.npz"
    np.savez(tmp, absent=np.array(reason))
    os.replace(tmp, path)


def load_reference(path):
    """(Trajectory, "") from a reference file, or (None, reason) from one written by save_absent_reference."""
    with np.load(path) as data:
        if "absent" in data:
            return None, str(data["absent"])
    return Trajectory.load(path), ""


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
        qs = agent.infer_states(obs)
        if learning == "pre":
            _learn(agent, obs, qs_prev, t)
        q_pi, G = agent.infer_policies()
        action = agent.sample_action()
        records["qs"].append(np.concatenate([np.asarray(q, dtype=float).ravel() for q in qs]))
        records["q_pi"].append(np.asarray(q_pi, dtype=float).ravel())
        records["G"].append(np.asarray(G, dtype=float).ravel())
        records["actions"].append(np.asarray(action).astype(int).ravel())
        records["ties"].append(tied_choice(agent, q_pi))
        if forced_actions is not None:
            agent.action = np.asarray(forced_actions[t], dtype=float)
        if learning == "post":
            _learn(agent, obs, qs_prev, t)
    return Trajectory(**{k: np.array(v) for k, v in records.items()})


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
    return (dev["dev_qs"] <= tolerance and dev["dev_q_pi"] <= tolerance
            and dev["dev_G_rel"] <= tolerance and dev["n_action_diff"] == 0)
