"""Side by side in one process: agent-steps per second of pymdp's JAX ``Agent(batch_size=B)``
(jitted, float64) and of the batched engine (``pymdpbench.engines.batched``), on seeded random
one-factor models (4 actions, policy length 1, as many outcomes as states), one thread unless stated;
then the batched engine's 1 -> 2 thread ratio, the cost of numpy's per-agent stochastic draws, and
memory per agent against its beliefs and parameters. The load average is printed with every table:
on a shared machine the ratios, measured in one run, are more telling than the absolute rates.

    python scripts/bench_batched.py [--states 8 64] [--batch-sizes 1 64 1024 4096] [--min-sample-s 0.2]
"""

import argparse
import os
import statistics
import sys
import time

# before numpy, numba and JAX load: one BLAS / XLA thread; numba may use 2 (the thread ratio)
for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[name] = "1"
os.environ["NUMBA_NUM_THREADS"] = str(min(2, os.cpu_count() or 1))
os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

import numpy as np  # noqa: E402

from pymdpbench.engines.batched import BatchedAgent  # noqa: E402
from pymdpbench.models import random_model  # noqa: E402


def rate(runner, batch_size, num_obs, min_sample_s, samples=5, seed=0):
    """Median agent-steps/s over ``samples`` samples of consecutive steps (each >= min_sample_s),
    after one untimed step (compilation); observations drawn beforehand."""
    rng = np.random.default_rng(seed)
    stream = rng.integers(num_obs, size=(64, batch_size, 1))
    runner.step(stream[0])
    rounds, elapsed = 1, 0.0
    while elapsed < min_sample_s:  # calibrate
        rounds *= 2
        t0 = time.perf_counter()
        for k in range(rounds):
            runner.step(stream[k % 64])
        elapsed = time.perf_counter() - t0
    durations = []
    for _ in range(samples):
        t0 = time.perf_counter()
        for k in range(rounds):
            runner.step(stream[k % 64])
        durations.append(time.perf_counter() - t0)
    return batch_size * rounds / statistics.median(durations)


def load():
    return os.getloadavg()[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--states", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64, 1024, 4096])
    parser.add_argument("--min-sample-s", type=float, default=0.2)
    parser.add_argument("--no-jax", action="store_true", help="leave out pymdp's JAX agent")
    args = parser.parse_args(argv)
    if not args.no_jax:
        from pymdpbench.engines.jax import BatchedAgent as JaxBatched

    print(f"load average at start: {load():.2f} ({os.cpu_count()} cores)")
    print("\nagent-steps/s, one thread")
    print(f"{'states':>6} {'B':>6} {'pymdp JAX':>12} {'batched':>12} {'ratio':>7} {'load':>5}")
    for ns in args.states:
        kwargs = random_model(1, [ns], [ns], [4]).agent_kwargs()
        for batch_size in args.batch_sizes:
            ours = rate(BatchedAgent(kwargs, batch_size, threads=1), batch_size, ns, args.min_sample_s)
            jax_rate = (
                float("nan")
                if args.no_jax
                else rate(JaxBatched(kwargs, batch_size, seed=0), batch_size, ns, args.min_sample_s)
            )
            print(f"{ns:>6} {batch_size:>6} {jax_rate:>12,.0f} {ours:>12,.0f} {ours / jax_rate:>6.1f}x {load():>5.2f}")
            sys.stdout.flush()

    import numba

    if numba.config.NUMBA_NUM_THREADS >= 2:
        print("\nbatched engine, 1 -> 2 threads, B = 1024")
        for ns in args.states:
            kwargs = random_model(1, [ns], [ns], [4]).agent_kwargs()
            one = rate(BatchedAgent(kwargs, 1024, threads=1), 1024, ns, args.min_sample_s)
            two = rate(BatchedAgent(kwargs, 1024, threads=2), 1024, ns, args.min_sample_s)
            print(
                f"states {ns:>3}: {one:>12,.0f} -> {two:>12,.0f} agent-steps/s  ratio {two / one:.2f}  "
                f"(load {load():.2f})"
            )

    print("\nstochastic selection, 8 states, B = 4096: numpy's draws per agent vs pre-drawn uniforms")
    kwargs = {**random_model(1, [8], [8], [4]).agent_kwargs(), "action_selection": "stochastic"}
    exact = rate(BatchedAgent(kwargs, 4096, draws="numpy"), 4096, 8, args.min_sample_s)
    fast = rate(BatchedAgent(kwargs, 4096, draws="uniform"), 4096, 8, args.min_sample_s)
    print(f"draws='numpy': {exact:>12,.0f}   draws='uniform': {fast:>12,.0f} agent-steps/s  (load {load():.2f})")

    print("\nmemory per agent (bytes), B = 1024: held per agent vs beliefs (qs, q_pi) and own parameters")
    for ns in args.states:
        model = random_model(1, [ns], [ns], [4], dirichlet=True)
        plain = {k: v for k, v in model.agent_kwargs().items() if k not in ("pA", "pB")}
        shared = BatchedAgent(plain, 1024)
        per_gamma = BatchedAgent(plain, 1024, per_agent={"gamma": np.full(1024, 16.0), "C": [np.zeros((1024, ns))]})
        learning = BatchedAgent(model.agent_kwargs(), 1024)
        for name, runner in (("shared model", shared), ("own C and gamma", per_gamma), ("learning pA, pB", learning)):
            mem = runner.memory()
            print(
                f"states {ns:>3}, {name:<16}: {mem['per_agent']:>9,.0f} held, {mem['beliefs_and_parameters']:>9,.0f} "
                f"needed, ratio {mem['per_agent'] / mem['beliefs_and_parameters']:.2f}; shared model {mem['shared']:,} B"
            )


if __name__ == "__main__":
    main()
