"""Side-by-side timing of engines in one process: the ratios the engine benchmark prints.

Timed interleaved (round after round, every engine once per round), one thread, so that drift of
a shared machine hits every engine alike; a ratio is the ratio of per-engine medians over rounds.
"""

import time

import numpy as np

from pymdpbench import gate, harness
from pymdpbench.engines import get_engine, traits


def full_step(agent, obs):
    agent.infer_states(obs)
    agent.infer_policies()
    agent.sample_action()


def build_agents(model, variants, policy_len):
    """One agent per variant that supports the model; the others with the reason why not."""
    agents, skipped = {}, {}
    options = {
        "num_states": model.num_states,
        "num_obs": model.num_obs,
        "num_controls": model.num_controls,
        "policy_len": policy_len,
    }
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
        steppers[name] = lambda a=agent, c=cycle: full_step(a, [int(o) for o in next(c)])
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


def peak_flops(n=256, min_time_s=0.05):
    """Floating-point operations per second of the calling thread at its best: a float64 matrix
    product of n x n (BLAS, 2 n^3 operations). Pin BLAS to one thread first for a one-thread figure."""
    a = np.random.default_rng(0).random((n, n))
    out = np.empty_like(a)
    np.matmul(a, a, out=out)
    repeats, elapsed = 1, 0.0
    while elapsed < min_time_s:
        repeats *= 2
        t0 = time.perf_counter()
        for _ in range(repeats):
            np.matmul(a, a, out=out)
        elapsed = time.perf_counter() - t0
    return 2 * n**3 * repeats / elapsed


def planning_flops(model, policy_len):
    """Arithmetic of one VANILLA ``infer_policies`` over pymdp's full policy tree, counted as the
    compiled walk does it, each distinct policy prefix once: for every internal node, each factor's
    next states under all its actions (2 Ns_f S_f Nu_f, S_f the joint states of the factor's
    ``B_factor_list``); for every node below the root, each modality's predicted outcomes, utility
    and state information gain (2 No_m S_m + 4 No_m + 2 S_m, S_m the joint states of its
    ``A_factor_list``). A lower count than any exact evaluation (the information gain's second pass
    over the kept states and the logs count as nothing), so ``flops / peak_flops()`` is a lower bound
    on the step's time."""
    num_states = model.num_states
    F = len(num_states)
    b_lists = model.B_factor_list or [[f] for f in range(F)]
    a_lists = model.A_factor_list or [list(range(F))] * len(model.num_obs)
    actions = int(np.prod(model.num_controls))
    per_parent = sum(
        2 * ns * int(np.prod([num_states[g] for g in fl])) * nu
        for ns, nu, fl in zip(num_states, model.num_controls, b_lists)
    )
    per_node = 0
    for no, fl in zip(model.num_obs, a_lists):
        joint = int(np.prod([num_states[f] for f in fl]))
        per_node += 2 * no * joint + 4 * no + 2 * joint
    parents = sum(actions**t for t in range(policy_len))
    nodes = sum(actions**t for t in range(1, policy_len + 1))
    return parents * per_parent + nodes * per_node


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
        forced = reference.actions if reference is not None and traits(name).rng != "numpy" else None
        trajectory = gate.run_trajectory(fresh, observations, action_seed, forced_actions=forced)
        if reference is None:
            reference = trajectory
        dev = gate.deviation(reference, trajectory)
        report[name] = max(dev["dev_qs"], dev["dev_q_pi"], dev["dev_G_rel"]), dev["n_action_diff"]
    return report


# --- two runs, cell by cell (``pymdpbench compare A B``) ------------------------------------------

#: environment entries whose difference a comparison reports (the rest: distributions, blas)
ENVIRONMENT_KEYS = (
    "host",
    "cpu_model",
    "cpu_count",
    "ram_bytes",
    "platform",
    "python",
    "git_commit",
    "git_dirty",
    "cpu_governor",
    "cpu_turbo",
    "cpu_mhz_max",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "XLA_FLAGS",
)


def compare_runs(old, new, threshold=0.1, alpha=0.05, seed=0):
    """Per (study, cell, variant) timed in both runs: ratio = median time new / old, its bootstrap
    95 % CI and a Mann–Whitney U p-value (Benjamini–Hochberg adjusted over all pairs), and a verdict:

    - ``slower`` (a regression): ratio > 1 + threshold, CI above 1, adjusted p < alpha;
    - ``faster``: ratio < 1 / (1 + threshold), CI below 1, adjusted p < alpha;
    - ``gate failed`` (a regression): passed the correctness gate in ``old``, fails it in ``new``;
    - ``same`` otherwise.

    ``old`` and ``new`` are row frames (``runs.load_rows``). Rows timed in several processes are
    compared by their per-process medians. Returns a frame sorted by study, cell, variant.
    """
    import pandas as pd

    from pymdpbench import stats

    keys = ["study", "cell", "variant"]

    def timed(df):
        ok = df[(df["status"] == "ok") & df["samples_s"].map(lambda s: s is not None and len(s) > 0)]
        return ok.drop_duplicates(keys).set_index(keys)

    a, b = timed(old), timed(new)
    records = []
    for key in sorted(set(a.index) & set(b.index)):
        ra, rb = a.loc[key], b.loc[key]
        result = stats.speedup(
            stats.timing_units(rb["samples_s"], rb.get("sample_process")),
            stats.timing_units(ra["samples_s"], ra.get("sample_process")),
            seed=seed,
        )
        records.append(
            {
                **dict(zip(keys, key)),
                "old_s": float(np.median(ra["samples_s"])),
                "new_s": float(np.median(rb["samples_s"])),
                "ratio": result["speedup"],
                "ratio_ci_low": result["speedup_ci_low"],
                "ratio_ci_high": result["speedup_ci_high"],
                "p_value": result["p_value"],
                "old_gate_pass": ra.get("gate_pass"),
                "new_gate_pass": rb.get("gate_pass"),
            }
        )
    columns = [*keys, "old_s", "new_s", "ratio", "ratio_ci_low", "ratio_ci_high", "p_value", "p_adjusted", "verdict"]
    if not records:
        return pd.DataFrame(columns=columns)
    out = pd.DataFrame(records)
    out["p_adjusted"] = stats.adjust_pvalues(out["p_value"])
    significant = out["p_adjusted"] < alpha
    slower = significant & (out["ratio"] > 1 + threshold) & (out["ratio_ci_low"] > 1)
    faster = significant & (out["ratio"] < 1 / (1 + threshold)) & (out["ratio_ci_high"] < 1)
    gate_failed = (out["old_gate_pass"] == True) & (out["new_gate_pass"] == False)  # noqa: E712 (nullable)
    out["verdict"] = np.select([gate_failed, slower, faster], ["gate failed", "slower", "faster"], "same")
    return out[columns]


def regressions(comparison):
    """The rows of a comparison that count as regressions (slower, or the gate newly failed)."""
    return comparison[comparison["verdict"].isin(["slower", "gate failed"])]


def environment_differences(old_env, new_env):
    """What differs between two runs' environments: ``[(entry, old, new)]`` over the main entries,
    every installed distribution (``distributions:<name>``) and the BLAS build (``blas``)."""
    diffs = [
        (key, old_env.get(key), new_env.get(key)) for key in ENVIRONMENT_KEYS if old_env.get(key) != new_env.get(key)
    ]
    old_d, new_d = old_env.get("distributions") or {}, new_env.get("distributions") or {}
    if old_d and new_d:
        diffs += [
            (f"distributions:{name}", old_d.get(name), new_d.get(name))
            for name in sorted(set(old_d) | set(new_d), key=str.lower)
            if old_d.get(name) != new_d.get(name)
        ]
    else:  # runs archived before the full list was kept: compare the named versions
        diffs += [
            (key, old_env.get(key), new_env.get(key))
            for key in sorted(set(old_env) | set(new_env))
            if key.startswith("version_") and old_env.get(key) != new_env.get(key)
        ]
    blas = lambda env: sorted(
        (str(p.get("internal_api")), str(p.get("version")), str(p.get("architecture")))  # noqa: E731
        for p in env.get("blas") or []
    )
    if blas(old_env) != blas(new_env):
        diffs.append(("blas", blas(old_env), blas(new_env)))
    return diffs


def format_comparison(comparison, threshold):
    """The comparison as a fixed-width text table, regressions marked with ``!``."""
    if comparison.empty:
        return "no (study, cell, variant) was timed in both runs"
    lines = [
        f"{'study':<10} {'cell':<22} {'variant':<9} {'old':>10} {'new':>10} {'new/old':>8} "
        f"{'95% CI':>17} {'p (BH)':>8}  verdict"
    ]
    for r in comparison.itertuples():
        mark = "!" if r.verdict in ("slower", "gate failed") else " "
        p = "—" if np.isnan(r.p_adjusted) else f"{r.p_adjusted:.2g}"
        lines.append(
            f"{r.study:<10} {r.cell:<22} {r.variant:<9} {_time(r.old_s):>10} {_time(r.new_s):>10} "
            f"{r.ratio:>8.3f} {f'[{r.ratio_ci_low:.3f}, {r.ratio_ci_high:.3f}]':>17} {p:>8} {mark}{r.verdict}"
        )
    counts = comparison["verdict"].value_counts()
    lines.append(
        f"{len(comparison)} compared (threshold {threshold:.0%}): "
        + ", ".join(f"{counts.get(v, 0)} {v}" for v in ("slower", "faster", "same", "gate failed"))
    )
    return "\n".join(lines)


def _time(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.3f} s"
