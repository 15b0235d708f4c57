"""Engine benchmark: every variant side by side, interleaved in one process, one thread.

    python scripts/bench_engines.py            # all scenarios (about 10 minutes on 2 cores)
    python scripts/bench_engines.py --quick    # fewer sizes and rounds

Prints per-step medians (infer_states + infer_policies + sample_action), ratios, each engine's
deviation from the standard agent on the same observations, the machine bound of each size, and
whether each target is met.
"""

import argparse
import sys
import tracemalloc

import numpy as np

from pymdpbench import compare, gate, harness
from pymdpbench.models import random_model

VARIANTS = ["standard", "numba", "float32", "sparse", "jax"]


def fmt(seconds):
    return f"{seconds * 1e6:10.1f} µs" if seconds < 1e-2 else f"{seconds * 1e3:10.2f} ms"


def run_dense(states_list, horizon, rounds, variants, targets):
    print(f"\n## dense random models: obs = states/2, 4 actions, policy length {horizon}")
    overhead = compare.call_overhead_s()
    print(f"numba call overhead (2 arrays): {fmt(overhead)}")
    header = f"{'states':>7} " + " ".join(f"{v:>13}" for v in variants) + \
        "   numba/std  f32/numba  numba/jax  bound       numba/bound  max dev (actions differing)"
    print(header)
    for states in states_list:
        model = random_model(states, [states], [max(2, states // 2)], [4], name="random")
        agents, skipped = compare.build_agents(model, variants, horizon)
        observations = gate.observation_sequence(states, model.num_obs, 8)
        devs = compare.gate_check(agents, model, observations)
        rounds_here = rounds if states <= 256 or horizon > 1 else max(3, rounds // 2)
        t = compare.interleaved_medians(agents, observations, rounds_here)
        bound = max(overhead, model.nbytes / compare.read_bandwidth(model.nbytes))
        ratio = {
            "numba/std": t["standard"] / t["numba"] if {"standard", "numba"} <= t.keys() else np.nan,
            "f32/numba": t["numba"] / t["float32"] if {"float32", "numba"} <= t.keys() else np.nan,
            "numba/jax": t["jax"] / t["numba"] if {"jax", "numba"} <= t.keys() else np.nan,
            "numba/bound": t.get("numba", np.nan) / bound,
        }
        cells = " ".join(f"{fmt(t[v]) if v in t else 'n/a':>13}" for v in variants)
        dev = ", ".join(f"{v}: {d:.1e} ({n})" for v, (d, n) in devs.items() if v != "standard")
        print(f"{states:>7} {cells}   {ratio['numba/std']:9.0f}  {ratio['f32/numba']:9.2f}  "
              f"{ratio['numba/jax']:9.1f}  {fmt(bound)}  {ratio['numba/bound']:9.2f}  {dev}")
        for v, reason in skipped.items():
            print(f"        {v} skipped: {reason}")
        targets.append(("dense", states, horizon, ratio))


def run_sparse(states, rounds):
    """Time and peak memory of the sparse engine on a model dense engines cannot hold.

    tracemalloc runs from before the model is built, so the peak covers construction and steps;
    a tiny model runs first so that imports and numba's kernel loading are not counted.
    """
    from pymdpbench.cell import held_bytes
    from pymdpbench.models import sparse_model

    print(f"\n## sparse model: {states} states, permutation B, 4 non-zeros per A column, 4 actions")
    warm, _ = compare.build_agents(sparse_model(0, 16, 16, 4), ["sparse"], 1)
    for agent in warm.values():
        compare.full_step(agent, [0])
    tracemalloc.start()
    model = sparse_model(states, states, states, 4)
    agents, skipped = compare.build_agents(model, ["sparse"], 1)
    if skipped:
        tracemalloc.stop()
        print(f"sparse skipped: {skipped['sparse']}")
        return None
    agent = agents["sparse"]
    observations = gate.observation_sequence(1, model.num_obs, 8)
    for obs in observations:
        compare.full_step(agent, [int(o) for o in obs])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    array_bytes = held_bytes(agent.A) + held_bytes(agent.B)
    t = compare.interleaved_medians(agents, observations, rounds)["sparse"]
    dense_gb = (states * states * 4 + states * states) * 8 / 1e9
    print(f"step {fmt(t)}; arrays {array_bytes / 2**20:.2f} MiB; tracemalloc peak from model build through 8 steps "
          f"{peak / 2**20:.2f} MiB ({peak / array_bytes:.2f}× the arrays); dense would need {dense_gb:.1f} GB")
    return t, peak / array_bytes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer sizes and rounds")
    parser.add_argument("--variants", nargs="+", default=VARIANTS)
    args = parser.parse_args(argv)
    blas = harness.apply_threads(1)
    print(f"threads: {blas}; load average {harness.load_average()}; CPU {harness.cpu_model()}")
    rounds = 5 if args.quick else 9
    variants = ["standard"] + [v for v in args.variants if v != "standard"]
    targets = []
    run_dense([8, 64, 128] if args.quick else [8, 32, 64, 128, 256, 512, 1024], 1, rounds, variants, targets)
    run_dense([8], 4, rounds, variants, targets)
    sparse = run_sparse(16384, rounds)

    print("\n## targets")
    checks = []
    for kind, states, horizon, r in targets:
        if horizon == 1 and 8 <= states <= 128:
            checks.append((f"numba ≥ 300× standard at {states} states", r["numba/std"], r["numba/std"] >= 300))
            checks.append((f"numba ≥ 10× jax at {states} states", r["numba/jax"], r["numba/jax"] >= 10))
        if horizon == 1 and states >= 256:
            checks.append((f"numba within 2× of the machine bound at {states} states", r["numba/bound"], r["numba/bound"] <= 2))
        if horizon == 1 and states >= 512:
            checks.append((f"float32 ≥ 1.5× numba at {states} states", r["f32/numba"], r["f32/numba"] >= 1.5))
        if horizon == 4:
            checks.append((f"numba ≥ 5000× standard at {states} states, horizon 4", r["numba/std"], r["numba/std"] >= 5000))
    if sparse is not None:
        checks.append(("sparse ≤ 3 ms per step at 16,384 states (ms)", sparse[0] * 1e3, sparse[0] <= 3e-3))
        checks.append(("sparse peak memory ≤ 2× its arrays", sparse[1], sparse[1] <= 2))
    for name, value, ok in checks:
        print(f"{'met ' if ok else 'MISS'}  {name}: {value:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
