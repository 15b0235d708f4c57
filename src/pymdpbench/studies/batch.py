"""Batch throughput: agent steps per second when B agents each take one step per batch of observations.

A stream of observation batches (one outcome per agent and modality per batch, seeded) is fed to B
agents that share one model; each agent keeps its own beliefs and last action. Three ways to run
a batch (``p_batch_mode``), each a grid point with every batch size (cell ids ``sequential-b16``):

* ``sequential``: a loop over B agents of the cell's variant, one after the other.
* ``multiprocessing``: a ``multiprocessing`` pool of ``processes`` workers (the cell declares
  that many threads). The model reaches each worker once, through the pool initializer, and each
  worker builds one agent of the variant from it; the work is a module-level function that
  receives a chunk of agents' states (``qs``, last action) with their observations, steps each
  agent and returns the new states and its pid. Moving the states and observations to and fro
  every batch is the real cost of this mode and is timed with it. Workers start with ``spawn``
  (forking a process that holds JAX or numba threads is unsafe) and pin their BLAS to one thread.
* ``vectorised``: the variant's batched form, declared by the engine as ``Traits.batched``
  ("module:Class" of a batched runner, see ``pymdpbench.engines.batched``): one call steps every
  agent (for ``numba`` and ``float32`` the batched numba engine, for ``jax`` pymdp's own
  ``Agent(batch_size=B)``). A variant without one is skipped with the reason, and so is the
  standard cell, so the cell's single-agent gate has no reference there and records ``gate_pass``
  null with the reason. Instead ``measure`` checks the batch itself: a fresh batched runner and the
  variant's single agent (one instance, each agent's state swapped in, agents in order) run the
  same observations and numpy draws for ``CHECK_STEPS`` steps, and every agent of the batch is
  compared (``batch_dev``, ``batch_n_action_diff``, ``batch_agents_checked``). These cells are
  repeated at each of ``vectorised_threads`` (the runner's threads; cell ids ``vectorised-b16-t2``
  beyond one thread).

The cell's own correctness gate and ``step_time_s`` are those of one agent of the variant, as in
every study; ``measure`` then times the batch: a warm-up batch (compilation, cache loads, worker
start-up are not timed), then ``samples`` samples of ``rounds`` consecutive batches;
``throughput_agent_steps_s`` = B x rounds / median sample time, with the bootstrap CI of that
median (``throughput_ci_low/high``). ``memory_per_agent_bytes``: a batched runner's own count of the
bytes it holds per agent (its ``memory()``), or for ``sequential`` the numpy allocation traced while
the B agents are built, over B; ``beliefs_parameters_bytes``: what the batched runner says an agent
needs at the least (qs, q_pi, its own parameters).
"""

import contextlib
import os
import sys
import time
import tracemalloc

import numpy as np

from pymdpbench import stats
from pymdpbench.engines import ENGINES, get_engine, traits
from pymdpbench.engines.base import obj_array
from pymdpbench.studies.base import SizeGrid

MODES = ("sequential", "multiprocessing", "vectorised")

#: steps of the batch check (every agent of the batch against the single-agent engine)
CHECK_STEPS = 3

#: the one agent of a pool worker (set by ``_init_worker``)
_WORKER = {}


def _init_worker(engine, kwargs):
    """Pool initializer: one thread for BLAS, one agent of ``engine`` ("module:Class") on the shared
    model, and one untimed step on it (compilation, cache loads) in every worker."""
    from pymdpbench import harness
    from pymdpbench.engines import get_engine

    harness.apply_threads(1)
    agent = get_engine(engine)(**kwargs)
    _WORKER["agent"] = agent
    _WORKER["initial"] = (agent.qs, agent.action)
    _step_agents(([None], np.zeros((1, len(agent.num_obs)), dtype=np.int64)))


def _worker_pid(wait_s):
    """Pool work of the start-up check: this worker's pid, after holding the worker ``wait_s``."""
    time.sleep(wait_s)
    return os.getpid()


def _step_agents(task):
    """Pool work: one step for each agent of a chunk. ``task`` = (states, observations): a list of
    (qs, action) per agent (None: a new agent) and a (k, M) int array. Returns (pid, new states)."""
    states, observations = task
    agent = _WORKER["agent"]
    out = []
    for state, obs in zip(states, observations):
        agent.qs, agent.action = state if state is not None else _WORKER["initial"]
        agent.infer_states([int(o) for o in obs])
        agent.infer_policies()
        agent.sample_action()
        out.append((agent.qs, agent.action))
    return os.getpid(), out


class _Sequential:
    """B agents of the variant, stepped one after the other."""

    def __init__(self, Agent, kwargs, batch_size, step):
        self.agents = [Agent(**kwargs) for _ in range(batch_size)]
        self.step_one = step

    def step(self, observations):
        for agent, obs in zip(self.agents, observations):
            self.step_one(agent, [int(o) for o in obs])

    def workers(self):
        return {os.getpid()}

    def close(self):
        pass


@contextlib.contextmanager
def _main_module_hidden():
    """Spawned workers re-import the parent's ``__main__`` from its file; a Snakemake script is such a
    file, without an ``if __name__ == "__main__"`` guard, and would run its cell again in every worker.
    While the workers start, ``__main__`` has no file, so they import only what the work needs."""
    main = sys.modules["__main__"]
    path = main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        if path is not None:
            main.__file__ = path


class _Pool:
    """B agents' states stepped by a pool of ``processes`` workers, one chunk of agents per worker."""

    def __init__(self, Agent, kwargs, batch_size, processes):
        import multiprocessing

        engine = f"{Agent.__module__}:{Agent.__qualname__}"
        with _main_module_hidden():
            self.pool = multiprocessing.get_context("spawn").Pool(processes, _init_worker, (engine, kwargs))
        self._await_workers(processes)
        self.chunks = [c for c in np.array_split(np.arange(batch_size), processes) if len(c)]
        self.states = [None] * batch_size
        self.pids = set()

    def _await_workers(self, processes, timeout_s=120.0):
        """Return once every worker has started and built its agent (a spawned worker imports its
        engine first: seconds), so that timing sees the whole pool rather than the first worker up."""
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            pids = self.pool.map_async(_worker_pid, [0.05] * processes, chunksize=1).get(timeout_s)
            if len(set(pids)) == processes:
                return
        raise TimeoutError(f"the pool did not start {processes} workers within {timeout_s:.0f} s")

    def step(self, observations):
        tasks = [([self.states[i] for i in chunk], observations[chunk]) for chunk in self.chunks]
        for chunk, (pid, states) in zip(self.chunks, self.pool.map(_step_agents, tasks, chunksize=1)):
            self.pids.add(pid)
            for i, state in zip(chunk, states):
                self.states[i] = state

    def workers(self):
        return self.pids

    def close(self):
        self.pool.terminate()
        self.pool.join()


def _batched_form(variant):
    """ "module:Class" of the variant's batched runner, or None."""
    return traits(variant).batched


def _variant_of(Agent):
    """The registered name whose engine is the class ``Agent`` (else its "module:Class" path)."""
    for name, path in ENGINES.items():
        module, cls = path.split(":")
        if getattr(sys.modules.get(module), cls, None) is Agent:
            return name
    return f"{Agent.__module__}:{Agent.__qualname__}"


def check_batch(Runner, Agent, kwargs, stream, seed, threads):
    """Every agent of a fresh batched runner against the single-agent engine on the same
    observations (``stream``: steps x B x M) and the same numpy draws: the single agent (one
    instance; each agent's qs and action swapped in, agents in order, as the runner draws) steps
    each agent in turn. Returns max |qs|, |q_pi| difference, agent-steps with a differing action,
    and the number of agents."""
    batch_size = stream.shape[1]
    np.random.seed(seed)
    runner = Runner(kwargs, batch_size, seed=seed, threads=threads)
    batched = []
    for obs in stream:
        actions = np.asarray(runner.step(obs))
        batched.append(
            ([np.array(q, dtype=float) for q in runner.qs], np.array(runner.q_pi, dtype=float), actions.astype(int))
        )
    runner.close()
    np.random.seed(seed)
    agent = Agent(**kwargs)
    states = [(agent.qs, agent.action)] * batch_size
    dev, differing = 0.0, 0
    for obs, (qs, q_pi, actions) in zip(stream, batched):
        for i in range(batch_size):
            agent.qs, agent.action = states[i]
            agent.infer_states([int(o) for o in obs[i]])
            single_q_pi, _ = agent.infer_policies()
            action = agent.sample_action()
            states[i] = (obj_array([np.array(q, dtype=float) for q in agent.qs]), np.array(action))
            dev = max(
                dev,
                *(float(np.max(np.abs(q[i] - np.asarray(s, dtype=float)))) for q, s in zip(qs, agent.qs)),
                float(np.max(np.abs(q_pi[i] - np.asarray(single_q_pi, dtype=float)))),
            )
            differing += int(np.any(actions[i] != np.asarray(action, dtype=int)))
    return dev, differing, batch_size


class Batch(SizeGrid):
    name = "batch"
    figures = ["throughput"]

    def points(self, settings):
        """modes x batch sizes at one model size (horizon 1)."""
        points = []
        for mode in settings["modes"]:
            for batch_size in settings["batch_sizes"]:
                point = {
                    "cell": f"{mode}-b{batch_size}",
                    "mode": mode,
                    "batch_size": batch_size,
                    "states": settings["states"],
                    "obs": settings["observations"],
                    "actions": settings["actions"],
                    "horizon": 1,
                    "rounds": settings["rounds"],
                    "samples": settings["samples"],
                }
                if mode == "multiprocessing":
                    point["threads"] = settings["processes"]
                if mode != "vectorised":
                    points.append(point)
                    continue
                for threads in settings.get("vectorised_threads", [1]):
                    suffix = f"-t{threads}" if threads != 1 else ""
                    points.append({**point, "cell": point["cell"] + suffix, "threads": threads})
        return points

    def row_parameters(self, point):
        return {**super().row_parameters(point), "p_batch_size": point["batch_size"], "p_batch_mode": point["mode"]}

    def options(self, point):
        return {**super().options(point), "batch_mode": point["mode"], "batch_size": point["batch_size"]}

    def model_entries(self, point):
        """B agents hold B models at most (pymdp JAX's batched agent stores B copies)."""
        entries, density = super().model_entries(point)
        return entries * point["batch_size"], density

    def supports(self, point, variant):
        if point["mode"] != "vectorised":
            return True, ""
        if _batched_form(variant) is None:
            return False, f"vectorised mode: {variant} has no batched form (its Traits.batched is None)"
        Runner = get_engine(_batched_form(variant))
        if hasattr(Runner, "supports"):
            supported, reason = Runner.supports(self.options(point))
            if not supported:
                return False, f"vectorised mode: {reason}"
        return True, ""

    def measure(self, Agent, kwargs, point, seed, timing):
        """Throughput of the point's mode over a seeded stream of observation batches; memory per
        agent; in vectorised mode, every agent of the batch checked against the single agent."""
        batch_size, rounds, samples = point["batch_size"], point["rounds"], point["samples"]
        rng = np.random.default_rng(seed)
        num_obs = [a.shape[0] for a in kwargs["A"]]
        stream = np.stack([rng.integers(n, size=(1 + samples * rounds, batch_size)) for n in num_obs], axis=-1)
        out = {"memory_per_agent_bytes": None, "beliefs_parameters_bytes": None}
        if point["mode"] == "vectorised":
            Runner = get_engine(_batched_form(_variant_of(Agent)))
            dev, differing, checked = check_batch(
                Runner, Agent, kwargs, stream[:CHECK_STEPS], seed % 2**32, point["threads"]
            )
            out.update({"batch_dev": dev, "batch_n_action_diff": differing, "batch_agents_checked": checked})
            runner = Runner(kwargs, batch_size, seed=seed % 2**32, threads=point["threads"])
            if hasattr(runner, "memory"):
                memory = runner.memory()
                out.update(
                    {
                        "memory_per_agent_bytes": memory["per_agent"],
                        "beliefs_parameters_bytes": memory.get("beliefs_and_parameters"),
                    }
                )
        elif point["mode"] == "sequential":
            tracemalloc.start()
            runner = _Sequential(Agent, kwargs, batch_size, self.step)
            out["memory_per_agent_bytes"] = tracemalloc.get_traced_memory()[0] / batch_size
            tracemalloc.stop()
        else:
            runner = _Pool(Agent, kwargs, batch_size, point["threads"])
        try:
            runner.step(stream[0])
            durations = []
            for k in range(samples):
                t0 = time.perf_counter()
                for batch in stream[1 + k * rounds : 1 + (k + 1) * rounds]:
                    runner.step(batch)
                durations.append(time.perf_counter() - t0)
            workers = len(runner.workers()) if hasattr(runner, "workers") else 1
        finally:
            runner.close()
        summary = stats.summarise(durations, timing.get("unstable_iqr_ratio", 0.25), seed=seed % 2**32)
        steps = batch_size * rounds
        return {
            **out,
            "throughput_agent_steps_s": steps / summary["step_time_s"],
            "throughput_ci_low": steps / summary["ci_high_s"],
            "throughput_ci_high": steps / summary["ci_low_s"],
            "batch_workers": workers,
        }
