"""A population of T-maze agents stepped together by the batched engine.

Each of B agents lives in its own T-maze (pymdp's ``pymdp.legacy.envs.TMazeEnv``: a centre, two arms
one of which is rewarded with probability 0.98 -- which one is the agent's hidden context -- and a
cue location that tells the context). All agents share one generative model; each has its own
preference for reward (per-agent C), its own beliefs and its own maze. Every time step is one call
of the batched engine for the whole population, plus a vectorised environment step.

The batched engine runs one hidden-state factor, and the T-maze has two (location x context), so
the model here is the T-maze's joint one-factor form: state = (location, context), 8 states,
``A_m[o, 2 loc + ctx] = A_m[o, loc, ctx]``, ``B[:, :, a] = B_loc[:, :, a] (x) B_ctx[:, :, 0]``,
``D = D_loc (x) D_ctx``. The same generative model; the posterior over the joint state is exact,
where pymdp's two-factor agent would use its mean-field fixed-point iteration: so these agents
are the one-factor legacy agents of this model, not pymdp's two-factor T-maze agents.

    python examples/tmaze_population.py [--agents 4096] [--trials 20] [--threads 1]
"""

import argparse
import time

import numpy as np
from pymdp.legacy.envs import TMazeEnv

from pymdpbench.engines.batched import BatchedAgent


def joint_tmaze():
    """A, B, D of the T-maze as one factor of 8 joint states (see the module docstring)."""
    env = TMazeEnv(reward_probs=[0.98, 0.02])
    A2, B2 = env.get_likelihood_dist(), env.get_transition_dist()
    A = [a.reshape(a.shape[0], -1) for a in A2]
    B = np.stack([np.kron(B2[0][:, :, u], B2[1][:, :, 0]) for u in range(B2[0].shape[-1])], axis=-1)
    D = np.kron(np.eye(4)[0], np.ones(2) / 2)  # at the centre, context unknown
    return A, B, D


def sample_outcomes(A, states, rng):
    """One outcome per agent and modality, drawn from A_m[:, state] (inverse CDF, all agents at once)."""
    out = np.empty((len(states), len(A)), dtype=np.int64)
    for m, a in enumerate(A):
        cdf = np.cumsum(a[:, states], axis=0)  # (No_m, agents)
        out[:, m] = np.minimum((rng.random(len(states)) > cdf).sum(axis=0), a.shape[0] - 1)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=4096)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--steps", type=int, default=3, help="time steps per trial")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)

    A, B, D = joint_tmaze()
    n = args.agents
    # per-agent preferences: how much each agent wants reward (outcome 1) over loss (outcome 2)
    reward_preference = np.linspace(0.0, 4.0, n)
    C_reward = np.stack([np.zeros(n), reward_preference, -reward_preference], axis=1)
    C = [np.zeros((n, A[0].shape[0])), C_reward, np.zeros((n, A[2].shape[0]))]
    kwargs = {"A": np.array(A + [None], dtype=object)[:-1], "B": B, "D": D, "policy_len": 2}
    population = BatchedAgent(kwargs, n, seed=args.seed, threads=args.threads, per_agent={"C": C})

    population.step(np.zeros((n, len(A)), dtype=np.int64))  # compile or load the kernels: not timed
    rewarded = np.zeros(n)
    stepping_s = 0.0
    for _ in range(args.trials):
        context = rng.integers(2, size=n)
        states = 0 * 2 + context  # everyone at the centre (location 0)
        population.reset()
        for _ in range(args.steps):
            obs = sample_outcomes(A, states, rng)
            rewarded += obs[:, 1] == 1
            t0 = time.perf_counter()
            actions = population.step(obs)[:, 0]  # the next location of each agent
            stepping_s += time.perf_counter() - t0
            states = actions * 2 + context  # the location moves as chosen; the context stays
        rewarded += sample_outcomes(A, states, rng)[:, 1] == 1

    agent_steps = n * args.trials * args.steps
    print(
        f"{n} agents, {args.trials} trials of {args.steps} steps: {agent_steps / stepping_s:,.0f} agent-steps/s "
        f"in the batched engine ({population.threads} thread(s))"
    )
    print("rewards per trial by preference for reward (C of the reward outcome):")
    for low, high in [(0, 1), (1, 2), (2, 3), (3, 4.01)]:
        chosen = (reward_preference >= low) & (reward_preference < high)
        print(f"  C_reward in [{low}, {min(high, 4):g}]: {rewarded[chosen].mean() / args.trials:.2f}")
    memory = population.memory()
    print(
        f"memory: {memory['per_agent']:.0f} B per agent (beliefs and own C: {memory['beliefs_and_parameters']} B), "
        f"shared model {memory['shared']} B"
    )


if __name__ == "__main__":
    main()
