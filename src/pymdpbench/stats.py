"""Statistics on timing samples: pure functions, no I/O, scipy.stats for everything it has."""

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000


def summarise(samples, unstable_iqr_ratio, seed=0):
    """Median, IQR, bootstrap 95 % CI of the median, and a stability flag.

    A cell is unstable when its IQR exceeds ``unstable_iqr_ratio`` × median: its samples spread
    too wide for the median to mean much (a busy machine, frequency scaling, GC).
    """
    x = np.asarray(samples, dtype=float)
    median = float(np.median(x))
    q1, q3 = np.percentile(x, [25, 75])
    if len(x) > 1 and np.ptp(x) > 0:
        ci = stats.bootstrap(
            (x,),
            np.median,
            confidence_level=CONFIDENCE,
            n_resamples=RESAMPLES,
            method="percentile",
            rng=np.random.default_rng(seed),
        ).confidence_interval
        low, high = float(ci.low), float(ci.high)
    else:
        low = high = median
    iqr = float(q3 - q1)
    return {
        "step_time_s": median,
        "step_time_iqr_s": iqr,
        "ci_low_s": low,
        "ci_high_s": high,
        "stable": bool(iqr <= unstable_iqr_ratio * median),
    }


def _median_ratio(baseline, variant, axis=-1):
    return np.median(baseline, axis=axis) / np.median(variant, axis=axis)


def speedup(baseline_samples, variant_samples, seed=0):
    """Speed-up = median(baseline) / median(variant), its bootstrap 95 % CI, and a two-sided
    Mann–Whitney U p-value for "the two time distributions differ"."""
    b = np.asarray(baseline_samples, dtype=float)
    v = np.asarray(variant_samples, dtype=float)
    ratio = float(_median_ratio(b, v))
    if len(b) > 1 and len(v) > 1:
        ci = stats.bootstrap(
            (b, v),
            _median_ratio,
            confidence_level=CONFIDENCE,
            n_resamples=RESAMPLES,
            method="percentile",
            vectorized=True,
            rng=np.random.default_rng(seed),
        ).confidence_interval
        low, high = float(ci.low), float(ci.high)
        p_value = float(stats.mannwhitneyu(b, v, alternative="two-sided").pvalue)
    else:
        low = high = ratio
        p_value = float("nan")
    return {"speedup": ratio, "speedup_ci_low": low, "speedup_ci_high": high, "p_value": p_value}


def adjust_pvalues(p_values):
    """Benjamini–Hochberg adjustment over all cells compared (NaN stays NaN)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


def geometric_mean(values):
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(stats.gmean(v)) if len(v) else float("nan")


def wilson_interval(rate, n, z=1.96):
    """Wilson score interval (low, high) of a proportion ``rate`` observed in ``n`` trials (arrays
    broadcast); unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or 1."""
    rate = np.asarray(rate, dtype=float)
    centre = (rate + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(rate * (1 - rate) / n + z**2 / (4 * n**2))
    return centre - half, centre + half


def timing_units(samples, sample_process=None):
    """The independent units of a row's timing: one median per process when it was timed in several
    fresh processes (the samples of one process are not independent of each other), else the raw
    samples. What speed-ups and run comparisons test and resample."""
    x = np.asarray(samples, dtype=float)
    if sample_process is None or len(sample_process) != len(x) or len(set(sample_process)) < 2:
        return x
    process = np.asarray(sample_process)
    return np.array([np.median(x[process == p]) for p in np.unique(process)])


def across_processes(samples_per_process, unstable_iqr_ratio, seed=0):
    """Summary of a cell timed in several fresh processes (one list of samples per process).

    Median and IQR of all samples pooled; the 95 % CI of the median by a cluster bootstrap that
    resamples whole processes (then a CI holds across processes, not only within one); and the
    variance split of a one-way random-effects model: ``within`` is the mean of the processes'
    sample variances, ``between`` the variance of the process means beyond what within-process
    noise explains, ``(MS_between - MS_within) / n`` floored at 0 (n samples per process).
    With one process, ``between`` is None: it cannot be estimated.
    """
    groups = [np.asarray(s, dtype=float) for s in samples_per_process]
    pooled = np.concatenate(groups)
    summary = summarise(pooled, unstable_iqr_ratio, seed)
    within = float(np.mean([g.var(ddof=1) if len(g) > 1 else 0.0 for g in groups]))
    out = {
        "processes": len(groups),
        "samples_s": pooled.tolist(),
        "sample_process": np.concatenate([np.full(len(g), i) for i, g in enumerate(groups)]).tolist(),
        "within_process_var_s2": within,
        "between_process_var_s2": None,
        "between_process_share": None,
    }
    if len(groups) < 2:
        return {**summary, **out}
    n = np.mean([len(g) for g in groups])
    ms_between = n * float(np.var([g.mean() for g in groups], ddof=1))
    between = max(0.0, (ms_between - within) / n)
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(groups), size=(RESAMPLES, len(groups)))
    medians = np.array([np.median(np.concatenate([groups[i] for i in pick])) for pick in picks])
    low, high = np.percentile(medians, [50 * (1 - CONFIDENCE), 50 * (1 + CONFIDENCE)])
    total = within + between
    return {
        **summary,
        **out,
        "ci_low_s": float(low),
        "ci_high_s": float(high),
        "between_process_var_s2": between,
        "between_process_share": between / total if total > 0 else 0.0,
    }
