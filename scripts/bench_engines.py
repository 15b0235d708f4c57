"""Engine benchmark: every variant side by side, interleaved in one process, one thread.

    python scripts/bench_engines.py            # all scenarios (about 15 minutes on 2 cores)
    python scripts/bench_engines.py --quick    # fewer sizes and rounds
    python scripts/bench_engines.py --real     # only the real models (pymdp's envs, GNN files, factorised)

Prints per-step medians (infer_states + infer_policies + sample_action), ratios, each engine's
deviation from the standard agent on the same observations, the machine bound of each size, and
whether each target is met.
"""

import argparse
import glob
import sys
import time
import tracemalloc

import numpy as np

from pymdpbench import compare, gate, harness
from pymdpbench.engines import get_engine
from pymdpbench.models import random_model
from pymdpbench.named import build_gridworld, build_tmaze, load_named_model

VARIANTS = ["standard", "numba", "float32", "sparse", "jax"]


def fmt(seconds):
    return f"{seconds * 1e6:10.1f} µs" if seconds < 1e-2 else f"{seconds * 1e3:10.2f} ms"


def run_dense(states_list, horizon, rounds, variants, targets):
    print(f"\n## dense random models: obs = states/2, 4 actions, policy length {horizon}")
    overhead = compare.call_overhead_s()
    print(f"numba call overhead (2 arrays): {fmt(overhead)}")
    header = (
        f"{'states':>7} "
        + " ".join(f"{v:>13}" for v in variants)
        + "   numba/std  f32/numba  numba/jax  bound       numba/bound  max dev (actions differing)"
    )
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
        print(
            f"{states:>7} {cells}   {ratio['numba/std']:9.0f}  {ratio['f32/numba']:9.2f}  "
            f"{ratio['numba/jax']:9.1f}  {fmt(bound)}  {ratio['numba/bound']:9.2f}  {dev}"
        )
        for v, reason in skipped.items():
            print(f"        {v} skipped: {reason}")
        targets.append(("dense", states, horizon, ratio))


def real_models(quick):
    """(label, model, policy length): pymdp's environments, every GNN file in config/models/, and
    random models of 2-4 factors."""
    models = [(f"T-maze H{h}", build_tmaze(), h) for h in (1, 2, 3)]
    models += [
        ("grid 5x5 H1", build_gridworld((5, 5)), 1),
        ("grid 5x5 H3", build_gridworld((5, 5)), 3),
        ("grid 10x10 H2", build_gridworld((10, 10)), 2),
    ]
    models += [
        (f"GNN {path.split('/')[-1]} H1", load_named_model(path), 1) for path in sorted(glob.glob("config/models/*.md"))
    ]
    models += [
        (
            "random [8,6,4], 3 mod. H1",
            random_model(3, [8, 6, 4], [6, 5, 4], [4, 3, 2], A_factor_list=[[0, 1], [1, 2], [0, 2]]),
            1,
        ),
        ("random 4 factors [4,3,3,2] H1", random_model(4, [4, 3, 3, 2], [5, 4], [2, 2, 2, 1]), 1),
    ]
    if not quick:
        models.append(("random [16,16] H2", random_model(2, [16, 16], [12, 8], [4, 4]), 2))
    return models


def run_real(rounds, variants, quick, targets):
    """Real, multi-factor models: step time per engine, ratios, the compute bound of the planning
    step (its counted flops over the thread's peak), and the gate on the same observations."""
    peak = compare.peak_flops()
    print(f"\n## real models (full step, one thread; peak {peak / 1e9:.1f} GFLOP/s, a one-thread float64 matmul)")
    print(
        f"{'model':>30} "
        + " ".join(f"{v:>13}" for v in variants)
        + "   numba/std  numba/jax  flop bound  numba/bound  max dev (actions)"
    )
    for label, model, horizon in real_models(quick):
        agents, skipped = compare.build_agents(model, variants, horizon)
        observations = gate.observation_sequence(7, model.num_obs, 6)
        devs = compare.gate_check(agents, model, observations)
        slow = {v: a for v, a in agents.items() if v == "standard"}
        fast = {v: a for v, a in agents.items() if v != "standard"}
        t = compare.interleaved_medians(fast, observations, rounds)
        # pymdp's own agent takes up to seconds per step here: timed on its own, fewer rounds
        t.update(compare.interleaved_medians(slow, observations, max(3, rounds // 3)) if slow else {})
        bound = compare.planning_flops(model, horizon) / peak
        ratio = {
            "numba/std": t["standard"] / t["numba"] if {"standard", "numba"} <= t.keys() else np.nan,
            "numba/jax": t["jax"] / t["numba"] if {"jax", "numba"} <= t.keys() else np.nan,
            "numba/bound": t.get("numba", np.nan) / bound,
            "numba_s": t.get("numba", np.nan),
            "jax_s": t.get("jax", np.nan),
        }
        cells = " ".join(f"{fmt(t[v]) if v in t else 'n/a':>13}" for v in variants)
        dev = ", ".join(f"{v}: {d:.1e} ({n})" for v, (d, n) in devs.items() if v != "standard")
        print(
            f"{label:>30} {cells}   {ratio['numba/std']:9.0f}  {ratio['numba/jax']:9.1f}  {fmt(bound)}  "
            f"{ratio['numba/bound']:11.1f}  {dev}"
        )
        for v, reason in skipped.items():
            print(f"        {v} skipped: {reason}")
        targets.append(("real", label, horizon, ratio))


def run_planning_schemes(rounds, variants, targets):
    """pymdp's other planning schemes on random one-factor models: MMP (marginal message passing over
    the last ``inference_horizon`` steps) and sophisticated inference (a search of depth ``si_horizon``)."""
    import contextlib
    import io

    print("\n## planning schemes (full step, one thread; pymdp's MMP prints at every sweep: silenced here)")
    print(f"{'scheme':>34} " + " ".join(f"{v:>13}" for v in variants) + "   numba/std")
    schemes = [
        (f"MMP, {s} states, H{h}, window {w}", s, dict(inference_algo="MMP", policy_len=h, inference_horizon=w))
        for s, h, w in ((4, 1, 2), (8, 2, 3), (16, 2, 3))
    ]
    schemes += [
        (f"sophisticated, {s} states, depth {d}", s, dict(sophisticated=True, si_horizon=d))
        for s, d in ((4, 2), (8, 2))
    ]
    for label, states, options in schemes:
        model = random_model(states, [states], [max(2, states // 2)], [3])
        agents = {}
        for variant in variants:
            Agent = get_engine(variant)
            if Agent.supports({"num_states": [states], "num_obs": model.num_obs, "num_controls": [3], **options})[0]:
                agents[variant] = Agent(**model.agent_kwargs(), **options)
        observations = gate.observation_sequence(states, model.num_obs, 6)
        with contextlib.redirect_stdout(io.StringIO()):
            t = compare.interleaved_medians(agents, observations, max(3, rounds // 2))
        ratio = t["standard"] / t["numba"] if {"standard", "numba"} <= t.keys() else np.nan
        cells = " ".join(f"{fmt(t[v]) if v in t else 'refused':>13}" for v in variants)
        print(f"{label:>34} {cells}   {ratio:9.1f}")
        targets.append(("scheme", label, 0, {"numba/std": ratio}))


def python_layer_share(rounds):
    """How much of a numba step at 8 states is the Python layer: the step against its kernels alone."""
    from pymdpbench.engines.numba import Agent, kernels

    model = random_model(8, [8], [4], [4])
    agent = Agent(**model.agent_kwargs())
    agent.infer_states([0])
    agent.infer_policies()
    structure = agent._structure()
    A, B = structure["A"], structure["B"]
    C = agent._field("C", lambda m, c: (c.shape[0], 1))
    snapshot, h = agent._entropy_cache(A)
    policies = agent._policy_array(structure)
    out, G, q_pi = np.empty(8), np.empty(len(policies)), np.empty(len(policies))
    p = np.empty((1, 4))
    obs = np.zeros(1, dtype=np.int64)
    action = np.zeros(1)
    fpi = np.array([10, 1.0, 0.001, 1.0])
    flags = np.ones(4, dtype=np.bool_)
    flags[2:] = False

    def kernels_only():
        kernels.infer_states(
            A, B, tuple(agent.qs), False, action, obs, structure["state_deps"], structure["acc_deps"], fpi, out
        )
        kernels.policy_values(
            A, B, C, snapshot, h, agent.E, tuple(agent.qs), policies, structure["deps"], A, B, flags, 16.0, G, q_pi
        )
        kernels.choose(q_pi, policies, structure["num_controls"], False, False, 16.0, p)

    def full():
        compare.full_step(agent, [0])

    best = {}
    for name, fn in (("kernels", kernels_only), ("step", full)):
        fn()
        n = harness.calibrate(fn, 0.02)
        samples = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples.append((time.perf_counter() - t0) / n)
        best[name] = float(np.median(samples))
    print(
        f"\nnumba at 8 states: step {fmt(best['step'])}, its three kernel calls alone {fmt(best['kernels'])}: "
        f"the Python layer is {1 - best['kernels'] / best['step']:.0%} of the step"
    )
    return best["step"]


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
    print(
        f"step {fmt(t)}; arrays {array_bytes / 2**20:.2f} MiB; tracemalloc peak from model build through 8 steps "
        f"{peak / 2**20:.2f} MiB ({peak / array_bytes:.2f}× the arrays); dense would need {dense_gb:.1f} GB"
    )
    return t, peak / array_bytes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer sizes and rounds")
    parser.add_argument("--real", action="store_true", help="only the real-models section")
    parser.add_argument("--variants", nargs="+", default=VARIANTS)
    args = parser.parse_args(argv)
    blas = harness.apply_threads(1)
    print(f"threads: {blas}; load average {harness.load_average()}; CPU {harness.cpu_model()}")
    rounds = 5 if args.quick else 9
    variants = ["standard"] + [v for v in args.variants if v != "standard"]
    targets = []
    run_real(rounds, variants, args.quick, targets)
    run_planning_schemes(rounds, variants, targets)
    step_8 = sparse = None
    if not args.real:
        run_dense([8, 64, 128] if args.quick else [8, 32, 64, 128, 256, 512, 1024], 1, rounds, variants, targets)
        run_dense([8], 4, rounds, variants, targets)
        step_8 = python_layer_share(rounds) if "numba" in variants else None
        sparse = run_sparse(16384, rounds)

    print("\n## targets")
    checks = []
    for kind, label, _horizon, r in targets:
        if kind == "scheme" and label.startswith("MMP"):
            checks.append((f"numba ≥ 10× standard, {label}", r["numba/std"], r["numba/std"] >= 10))
        if kind != "real":
            continue
        if label == "T-maze H1":
            checks.append(("numba ≤ 10 µs per step on the T-maze, H1 (µs)", r["numba_s"] * 1e6, r["numba_s"] <= 10e-6))
        if not label.startswith("random"):
            checks.append((f"numba ≥ 10× jax, {label}", r["numba/jax"], r["numba/jax"] >= 10))
        checks.append((f"numba ≥ 100× standard, {label}", r["numba/std"], r["numba/std"] >= 100))
        if r["numba_s"] >= 1e-3:
            checks.append(
                (f"numba never slower than jax where a step takes ≥ 1 ms, {label}", r["numba/jax"], r["numba/jax"] >= 1)
            )
            checks.append(
                (
                    f"numba within 2× of the compute bound where a step takes ≥ 1 ms, {label}",
                    r["numba/bound"],
                    r["numba/bound"] <= 2,
                )
            )
    if step_8 is not None:
        checks.append(("numba ≤ 3 µs per step at 8 states (µs)", step_8 * 1e6, step_8 <= 3e-6))
    for kind, states, horizon, r in targets:
        if kind in ("real", "scheme"):
            continue
        if horizon == 1 and 8 <= states <= 128:
            checks.append((f"numba ≥ 300× standard at {states} states", r["numba/std"], r["numba/std"] >= 300))
            checks.append((f"numba ≥ 10× jax at {states} states", r["numba/jax"], r["numba/jax"] >= 10))
        if horizon == 1 and states >= 256:
            checks.append(
                (f"numba within 2× of the machine bound at {states} states", r["numba/bound"], r["numba/bound"] <= 2)
            )
        if horizon == 1 and states >= 512:
            checks.append((f"float32 ≥ 1.5× numba at {states} states", r["f32/numba"], r["f32/numba"] >= 1.5))
        if horizon == 4:
            checks.append(
                (f"numba ≥ 5000× standard at {states} states, horizon 4", r["numba/std"], r["numba/std"] >= 5000)
            )
    if sparse is not None:
        checks.append(("sparse ≤ 3 ms per step at 16,384 states (ms)", sparse[0] * 1e3, sparse[0] <= 3e-3))
        checks.append(("sparse peak memory ≤ 2× its arrays", sparse[1], sparse[1] <= 2))
    for name, value, ok in checks:
        print(f"{'met ' if ok else 'MISS'}  {name}: {value:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
