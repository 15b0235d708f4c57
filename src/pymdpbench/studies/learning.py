"""Learning: what parameter learning costs per step, and what it buys on a task with a real goal.

The task is pymdp's T-maze (``pymdp.legacy.envs.TMazeEnv``, built by
:func:`pymdpbench.named.build_tmaze`): the agent starts in the centre, one arm pays (reward
outcome with ``reward_probability``), the other punishes, and a cue arm tells which is which.
The agent knows the layout but not the payoffs:

* ``pA``: ``prior_concentration`` times the true A, except the reward modality in the two arms,
  which is flat over the outcomes the arm can give (reward or loss, 1/2 each) — the agent does not
  know which arm pays in which context and must learn it. The zeros of A stay zeros (legacy's
  ``[A > 0]`` mask keeps them), so the structure is known.
* ``pB``: ``prior_concentration`` times the location transitions mixed with uniform
  (``pB_noise`` of the mass), so the agent is unsure where its moves lead and sharpens B as it
  goes; the context factor's identity transitions are known.

Both are learned with ``lr_pA = lr_pB = lr`` (the grid), with or without the parameter
information gain in the expected free energy. A cell id reads ``lr0.05-pig0-e20x4``: learning
rate, parameter info gain off/on, episodes x steps per episode.

The timed step (:meth:`Learning.step`) is one learning step: ``infer_states``, ``update_A``,
``update_B`` (with the posterior before this step), ``infer_policies``, ``sample_action``. The
correctness gate replays it (``gate_learning = "pre"``), so learned A and B are compared too.

:meth:`Learning.measure` then lets ``runs`` fresh learners each play ``episodes`` episodes of
``steps`` actions in the environment, with the engine under test. An episode's reward is the
number of reward outcomes minus the number of loss outcomes its actions led to; the goal is
reached when it is positive. Learned pA and pB carry over between episodes; beliefs do not (each
episode starts from D: ``agent.action = None``).

Seeding: the environment draws its context (``reset``: ``np.random.randint``) and its outcomes
(``step``: ``np.random.multinomial``) from numpy's global legacy RNG, and so does the agent when it
breaks a tie between equally good actions. Each run seeds that RNG once, from the cell seed, so an
engine that draws like pymdp (every own-kernel engine) walks exactly the standard agent's path.
"""

import copy
import time

import numpy as np

from pymdpbench.engines.base import obj_array
from pymdpbench.studies.base import Study, exact_number, model_parameters

#: actions of the T-maze (location factor; the reward condition has one, uncontrolled)
TMAZE_ACTIONS = 4
#: entries of the T-maze's A (4x4x2 + 3x4x2 + 2x4x2) and B (4x4x4 + 2x2x1).
TMAZE_ENTRIES = 140
#: episodes in the rolling window of the convergence measure.
CONVERGENCE_WINDOW = 5
#: how close (in goal rate) the rolling mean must stay to its final value to count as converged.
CONVERGENCE_TOLERANCE = 0.1


def episodes_to_converge(goal_rate, window=CONVERGENCE_WINDOW, tolerance=CONVERGENCE_TOLERANCE):
    """Episodes until learning settles: the first episode (counted from 1) whose rolling mean goal
    rate over the last ``window`` episodes, and every later one, stays within ``tolerance`` of the
    final rolling mean. Only full windows count (a run shorter than the window uses all its
    episodes as one window, which converges at its last episode)."""
    rates = np.asarray(goal_rate, dtype=float)
    window = min(window, len(rates))
    rolling = np.convolve(rates, np.ones(window) / window, mode="valid")
    outside = np.flatnonzero(np.abs(rolling - rolling[-1]) > tolerance)
    first = outside[-1] + 1 if len(outside) else 0
    return int(first + window)


def final_goal_rate(goal_rate, window=CONVERGENCE_WINDOW):
    """Mean goal rate of the last ``window`` episodes."""
    rates = np.asarray(goal_rate, dtype=float)
    return float(rates[-min(window, len(rates)) :].mean())


def uninformed_priors(model, concentration, pB_noise):
    """(pA, pB) of the T-maze agent that does not know which arm pays (see the module docstring)."""
    from pymdp.legacy.envs.tmaze import LOCATION_FACTOR_ID, REWARD_MODALITY_ID

    pA = obj_array([concentration * a for a in model.A])
    reward = model.A[REWARD_MODALITY_ID].copy()
    arms = reward[:, 1:3] > 0  # locations 1 and 2 are the arms
    reward[:, 1:3] = arms / arms.sum(axis=0, keepdims=True)
    pA[REWARD_MODALITY_ID] = concentration * reward
    pB = obj_array([concentration * b for b in model.B])
    locations = model.B[LOCATION_FACTOR_ID]
    pB[LOCATION_FACTOR_ID] = concentration * ((1 - pB_noise) * locations + pB_noise / locations.shape[0])
    return pA, pB


def learning_step(agent, obs, update_B=True):
    """One learning step; returns the action. ``update_B`` is False on an episode's first step,
    which has no previous action to learn a transition from."""
    qs_prev = obj_array([np.array(q, copy=True) for q in agent.qs])
    agent.infer_states(obs)
    agent.update_A(obs)
    if update_B:
        agent.update_B(qs_prev)
    agent.infer_policies()
    return agent.sample_action()


def play(Agent, kwargs, point, seed):
    """One fresh learner plays the point's episodes in pymdp's T-maze; numpy's global RNG is seeded
    with ``seed``. Returns per-episode arrays (reward, seconds per learning step)."""
    from pymdp.legacy.envs import TMazeEnv
    from pymdp.legacy.envs.tmaze import LOSS_IDX, REWARD_IDX, REWARD_MODALITY_ID

    p = point["reward_probability"]
    env = TMazeEnv(reward_probs=[p, 1 - p])
    agent = Agent(**copy.deepcopy(kwargs))
    np.random.seed(seed)
    rewards, step_times = np.zeros(point["episodes"]), np.zeros(point["episodes"])
    for episode in range(point["episodes"]):
        obs = env.reset()
        agent.action = None
        for t in range(point["steps"]):
            start = time.perf_counter()
            action = learning_step(agent, [int(o) for o in obs], update_B=t > 0)
            step_times[episode] += time.perf_counter() - start
            obs = env.step(action)
            rewards[episode] += int(obs[REWARD_MODALITY_ID] == REWARD_IDX) - int(obs[REWARD_MODALITY_ID] == LOSS_IDX)
    return rewards, step_times / point["steps"]


class Learning(Study):
    name = "learning"
    figures = ["learning_curve", "speedup", "deviation"]
    gate_learning = "pre"

    def points(self, settings):
        """One point per learning configuration; the task settings are shared by all."""
        shared = {
            key: settings[key]
            for key in ("episodes", "steps", "runs", "horizon", "prior_concentration", "pB_noise", "reward_probability")
        }
        return [
            {
                "cell": f"lr{exact_number(c['lr'])}-pig{int(c['param_info_gain'])}-e{settings['episodes']}x{settings['steps']}",
                "lr": float(c["lr"]),
                "param_info_gain": bool(c["param_info_gain"]),
                **shared,
            }
            for c in settings["configs"]
        ]

    def _tmaze(self, point):
        from pymdpbench.named import build_tmaze

        p = point["reward_probability"]
        return build_tmaze(reward_probs=[p, 1 - p])

    def row_parameters(self, point):
        return {
            **model_parameters(self._tmaze(point), point["horizon"], "tmaze"),
            "p_lr": point["lr"],
            "p_param_info_gain": point["param_info_gain"],
            "p_episodes": point["episodes"],
            "p_episode_steps": point["steps"],
        }

    def options(self, point):
        """The model, plus ``learning``, the learning rates, ``use_param_info_gain`` and ``density``
        (share of non-zero pA and pB entries: the T-maze's are sparse)."""
        model = self.build_model(point, 0)
        entries = [*model.pA, *model.pB]
        density = sum(int(np.count_nonzero(p)) for p in entries) / sum(p.size for p in entries)
        return {
            "num_states": model.num_states,
            "num_obs": model.num_obs,
            "num_controls": model.num_controls,
            "policy_len": point["horizon"],
            "A_factor_list": None,
            "B_factor_list": None,
            "learning": True,
            "lr_pA": point["lr"],
            "lr_pB": point["lr"],
            "use_param_info_gain": point["param_info_gain"],
            "density": density,
        }

    def model_entries(self, point):
        """Known without building the model, so the pipeline's resource estimate does not import pymdp."""
        return TMAZE_ENTRIES, 1.0

    def policy_count(self, point):
        """Known without building the model (see ``model_entries``)."""
        return TMAZE_ACTIONS ** point["horizon"]

    def build_model(self, point, seed):
        """The T-maze with the uninformed pA and noisy pB; it draws nothing, so ``seed`` is unused."""
        model = self._tmaze(point)
        model.pA, model.pB = uninformed_priors(model, point["prior_concentration"], point["pB_noise"])
        return model

    def agent_options(self, point):
        return {
            "policy_len": point["horizon"],
            "lr_pA": point["lr"],
            "lr_pB": point["lr"],
            "use_param_info_gain": point["param_info_gain"],
        }

    def step(self, agent, obs):
        """infer_states, update_A, update_B, infer_policies, sample_action."""
        learning_step(agent, obs)

    def measure(self, Agent, kwargs, point, seed, timing):
        """Learning curves of ``runs`` learners, each seeded from the cell seed (the same for every
        variant): per episode the share of runs that reached the goal, their mean reward and mean
        seconds per learning step; then the convergence measure of the goal-rate curve."""
        seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(point["runs"])]
        kwargs = {
            **kwargs,
            **self.build_model(point, 0).agent_kwargs(),
        }  # the prior afresh, whatever earlier agents did to theirs
        played = [play(Agent, kwargs, point, s) for s in seeds]
        rewards = np.array([r for r, _ in played])
        step_times = np.array([t for _, t in played])
        goal_rate = (rewards > 0).mean(axis=0)
        return {
            "learning_runs": point["runs"],
            "episode_goal_rate": goal_rate.tolist(),
            "episode_reward": rewards.mean(axis=0).tolist(),
            "episode_step_time_s": step_times.mean(axis=0).tolist(),
            "episodes_to_converge": episodes_to_converge(goal_rate),
            "final_goal_rate": final_goal_rate(goal_rate),
        }
