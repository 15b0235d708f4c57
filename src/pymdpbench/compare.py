"""Side-by-side timing of engines in one process: the ratios the engine benchmark prints.

Timed interleaved (round after round, every engine once per round), one thread, so that drift of
a shared machine hits every engine alike; a ratio is the ratio of per-engine medians over rounds.
"""

import time

import numpy as np

from pymdpbench import gate, harness
from pymdpbench.engines import get_engine


def full_step(agent, obs):
    agent.infer_states(obs)
    agent.infer_policies()
    agent.sample_action()


def build_agents(model, variants, policy_len):
    """One agent per variant that supports the model; the others with the reason why not."""
    agents, skipped = {}, {}
    options = {"num_states": model.num_states, "num_obs": model.num_obs,
               "num_controls": model.num_controls, "policy_len": policy_len}
    for variant in variants:
        Agent = get_engine(variant)
        ok, reason = Agent.supports(options)
        if ok:
            agents[variant] = Agent(**model.agent_kwargs(), policy_len=policy_len)
        else:
            skipped[variant] = reason
    return agents, skipped


def interleaved_medians(agents, observations, rounds, min_block_s=0.02):
    """Median seconds per step of each agent, timed in interleaved blocks of calibrated length."""
    steppers = {}
    for name, agent in agents.items():
        cycle = iter(np.tile(observations, (10_000, 1)))
        steppers[name] = (lambda a=agent, c=cycle: full_step(a, [int(o) for o in next(c)]))
        steppers[name]()  # warm-up: compilation or cache load happens here, untimed
    inner = {name: harness.calibrate(step, min_block_s) for name, step in steppers.items()}
    samples = {name: [] for name in agents}
    for _ in range(rounds):
        for name, step in steppers.items():
            samples[name].extend(harness.time_samples(step, 1, inner[name]))
    return {name: float(np.median(s)) for name, s in samples.items()}


def read_bandwidth(nbytes, min_time_s=0.05):
    """Bytes per second for reading ``nbytes`` of float64 once (a sum), at that working-set size."""
    x = np.ones(max(1, nbytes // 8))
    x.sum()
    repeats, elapsed = 1, 0.0
    while elapsed < min_time_s:
        t0 = time.perf_counter()
        for _ in range(repeats):
            x.sum()
        elapsed = time.perf_counter() - t0
        repeats *= 2
    return x.nbytes * (repeats // 2) / elapsed


def call_overhead_s():
    """Time of a trivial numba call with two arrays: the floor under any kernel-based step."""
    import numba

    @numba.njit(cache=False)
    def touch(a, b):
        return a[0] + b[0]

    a, b = np.zeros(4), np.zeros(4)
    touch(a, b)
    n = 200_000
    t0 = time.perf_counter()
    for _ in range(n):
        touch(a, b)
    return (time.perf_counter() - t0) / n


def gate_check(agents, model, observations, action_seed=0):
    """Max deviation of each agent's trajectory from the standard agent's on the same observations."""
    reference = None
    report = {}
    for name, agent in agents.items():
        fresh = type(agent)(**model.agent_kwargs(), policy_len=len(agent.policies[0]))
        forced = reference.actions if reference is not None and getattr(type(agent), "replays_reference_actions", False) else None
        trajectory = gate.run_trajectory(fresh, observations, action_seed, forced_actions=forced)
        if reference is None:
            reference = trajectory
        dev = gate.deviation(reference, trajectory)
        report[name] = max(dev["dev_qs"], dev["dev_q_pi"], dev["dev_G_rel"]), dev["n_action_diff"]
    return report
