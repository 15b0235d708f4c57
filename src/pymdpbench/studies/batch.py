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
* ``vectorised``: pymdp's own JAX ``Agent(batch_size=B)``, configured like the ``jax`` variant
  (legacy's gamma = alpha = 16, marginal action sampling, log-softmax C, 10 fixed-point sweeps,
  float64), one jitted call per batch: empirical prior, ``infer_states``, ``infer_policies``,
  ``sample_action`` for all B agents. Only the ``jax`` variant has this form; the numba engine
  offers no batched kernel, and the other variants none either: those cells are skipped by the
  study with the reason. The standard cell is skipped there too, so the ``jax`` cell of a
  vectorised point has no reference trajectory and records ``gate_pass`` null with the reason.

The cell's own correctness gate and ``step_time_s`` are those of one agent of the variant, as in
every study; ``measure`` then times the batch: a warm-up batch (compilation, cache loads, worker
start-up are not timed), then ``samples`` samples of ``rounds`` consecutive batches;
``throughput_agent_steps_s`` = B x rounds / median sample time.
"""

import contextlib
import os
import statistics
import sys
import time

import numpy as np

from pymdpbench.studies.base import SizeGrid

MODES = ("sequential", "multiprocessing", "vectorised")

#: pymdp.legacy's defaults where pymdp JAX's differ (``legacy/agent.py``; see engines/jax.py).
LEGACY_GAMMA = LEGACY_ALPHA = 16.0

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


class _Vectorised:
    """pymdp's JAX Agent with ``batch_size=B``: one jitted call steps every agent."""

    def __init__(self, kwargs, batch_size, seed):
        import jax
        import jax.numpy as jnp
        from jax import random as jr
        from pymdp.agent import Agent as JaxAgent

        from pymdpbench.engines.jax import NUM_ITER, log_preferences  # also switches JAX to float64

        policy_len = kwargs.get("policy_len", 1)
        agent = JaxAgent(
            A=[jnp.asarray(a, dtype=float) for a in kwargs["A"]], B=[jnp.asarray(b, dtype=float) for b in kwargs["B"]],
            C=log_preferences(kwargs["C"], policy_len), D=[jnp.asarray(d, dtype=float) for d in kwargs["D"]],
            A_dependencies=kwargs.get("A_factor_list"), B_dependencies=kwargs.get("B_factor_list"),
            policy_len=policy_len, gamma=LEGACY_GAMMA, alpha=LEGACY_ALPHA, sampling_mode="marginal",
            action_selection="deterministic", inference_algo="fpi", num_iter=NUM_ITER, batch_size=batch_size)
        num_modalities = len(kwargs["A"])

        def step(qs, action, first, obs, keys):
            predicted = agent.update_empirical_prior(action, [q[:, None] for q in qs])
            prior = [jnp.where(first, d, p) for d, p in zip(agent.D, predicted)]
            qs = agent.infer_states([obs[:, m] for m in range(num_modalities)], empirical_prior=prior)
            qs = [q[:, -1] for q in qs]
            q_pi, _ = agent.infer_policies([q[:, None] for q in qs])
            return qs, agent.sample_action(q_pi, rng_key=keys).astype(jnp.int32)  # one dtype: one compilation

        self._jax, self._step = jax, jax.jit(step)
        self.qs = list(agent.D)
        self.action = jnp.zeros((batch_size, len(kwargs["B"])), dtype=jnp.int32)
        self.first = True
        self.keys = jr.split(jr.PRNGKey(seed % 2**31), batch_size)

    def step(self, observations):
        self.qs, self.action = self._jax.block_until_ready(
            self._step(self.qs, self.action, self.first, observations, self.keys))
        self.first = False

    def workers(self):
        return {os.getpid()}

    def close(self):
        pass


class Batch(SizeGrid):
    name = "batch"
    figures = ["throughput"]

    def points(self, settings):
        """modes x batch sizes at one model size (horizon 1)."""
        points = []
        for mode in settings["modes"]:
            for batch_size in settings["batch_sizes"]:
                point = {"cell": f"{mode}-b{batch_size}", "mode": mode, "batch_size": batch_size,
                         "states": settings["states"], "obs": settings["observations"],
                         "actions": settings["actions"], "horizon": 1,
                         "rounds": settings["rounds"], "samples": settings["samples"]}
                if mode == "multiprocessing":
                    point["threads"] = settings["processes"]
                points.append(point)
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
        if point["mode"] != "vectorised" or variant == "jax":
            return True, ""
        if variant == "numba":
            return False, "vectorised mode: the numba engine offers no batched kernel"
        return False, (f"vectorised mode: {variant} has no batched form; this mode runs pymdp's JAX "
                       "Agent(batch_size=B) (variant jax)")

    def measure(self, Agent, kwargs, point, seed, timing):
        """Throughput of the point's mode over a seeded stream of observation batches."""
        batch_size, rounds, samples = point["batch_size"], point["rounds"], point["samples"]
        rng = np.random.default_rng(seed)
        num_obs = [a.shape[0] for a in kwargs["A"]]
        stream = np.stack([rng.integers(n, size=(1 + samples * rounds, batch_size)) for n in num_obs], axis=-1)
        if point["mode"] == "sequential":
            runner = _Sequential(Agent, kwargs, batch_size, self.step)
        elif point["mode"] == "multiprocessing":
            runner = _Pool(Agent, kwargs, batch_size, point["threads"])
        else:
            runner = _Vectorised(kwargs, batch_size, seed)
        try:
            runner.step(stream[0])
            durations = []
            for k in range(samples):
                t0 = time.perf_counter()
                for batch in stream[1 + k * rounds:1 + (k + 1) * rounds]:
                    runner.step(batch)
                durations.append(time.perf_counter() - t0)
            workers = len(runner.workers())
        finally:
            runner.close()
        return {"throughput_agent_steps_s": batch_size * rounds / statistics.median(durations),
                "batch_workers": workers}
