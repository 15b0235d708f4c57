"""Tables from merged study results: per-cell medians with CIs, speed-ups over the standard agent
with CIs and significance, and the cells that failed the correctness gate."""

import numpy as np
import pandas as pd

from pymdpbench import stats

#: the grid axis that varies most in each study (x of its figures)
X_AXIS = {"planning": "p_horizon"}
POINT_COLUMNS = ["p_states", "p_obs", "p_actions", "p_horizon"]


def x_axis(study):
    return X_AXIS.get(study, "p_states")


def load(path):
    return pd.read_parquet(path)


def speedups(df):
    """One row per (cell, variant other than standard) that ran: speed-up over standard with its
    bootstrap CI, Mann–Whitney p-value and Benjamini–Hochberg adjusted p-value over all comparisons.

    Only cells that passed the correctness gate get a speed-up; a failed cell keeps NaN and
    ``gate_pass = False``, so it is listed, never dropped, and never counted.
    """
    ok = df[df["status"] == "ok"]
    reference = ok[ok["variant"] == "standard"].set_index("cell")
    out = []
    for _, row in ok[ok["variant"] != "standard"].iterrows():
        if row["cell"] not in reference.index:
            continue
        base = reference.loc[row["cell"]]
        entry = {"study": row["study"], "cell": row["cell"], "variant": row["variant"],
                 **{c: row[c] for c in POINT_COLUMNS}, "gate_pass": bool(row["gate_pass"])}
        if row["gate_pass"]:
            entry.update(stats.speedup(base["samples_s"], row["samples_s"], seed=int(row["seed"]) % 2**32))
        else:
            entry.update({"speedup": np.nan, "speedup_ci_low": np.nan, "speedup_ci_high": np.nan, "p_value": np.nan})
        out.append(entry)
    table = pd.DataFrame(out, columns=["study", "cell", "variant", *POINT_COLUMNS, "gate_pass", "speedup",
                                       "speedup_ci_low", "speedup_ci_high", "p_value"])
    table["p_adjusted"] = stats.adjust_pvalues(table["p_value"].to_numpy()) if len(table) else []
    table["significant"] = table["p_adjusted"] < 0.05
    return table


def _fmt_time(s):
    if not np.isfinite(s):
        return "–"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s * 1e9:.3g} ns"


def markdown(df, skipped_files=None):
    """The study's markdown table: times with CIs, speed-ups with CIs, gate results, skipped cells,
    and cell files the merge left out (``skip_bad_cells``)."""
    study = df["study"].iloc[0]
    ok = df[df["status"] == "ok"].sort_values([x_axis(study), "cell", "variant"])
    sp = speedups(df).set_index(["cell", "variant"])
    lines = [f"# {study}", "",
             "| cell | variant | step time (median) | 95 % CI | speed-up vs standard (95 % CI) | p (BH) | max deviation | gate |",
             "|---|---|---|---|---|---|---|---|"]
    for _, r in ok.iterrows():
        speed = "reference"
        p_adj = ""
        if r["variant"] != "standard" and (r["cell"], r["variant"]) in sp.index:
            s = sp.loc[(r["cell"], r["variant"])]
            if s["gate_pass"]:
                speed = f"{s['speedup']:.3g}× ({s['speedup_ci_low']:.3g}–{s['speedup_ci_high']:.3g})"
                p_adj = f"{s['p_adjusted']:.2g}"
            else:
                speed = "not counted (gate failed)"
        dev = max(r["dev_qs"], r["dev_q_pi"], r["dev_G_rel"])
        gate = "pass" if r["gate_pass"] else f"**FAIL** ({int(r['n_action_diff'])} actions differ)"
        stable = "" if r["stable"] else " (unstable)"
        lines.append(f"| {r['cell']} | {r['variant']} | {_fmt_time(r['step_time_s'])}{stable} | "
                     f"{_fmt_time(r['ci_low_s'])}–{_fmt_time(r['ci_high_s'])} | {speed} | {p_adj} | {dev:.1e} | {gate} |")
    passing = speedups(df)
    passing = passing[passing["gate_pass"]]
    if len(passing):
        lines += ["", "| variant | geometric-mean speed-up over passing cells | cells |", "|---|---|---|"]
        for variant, group in passing.groupby("variant"):
            lines.append(f"| {variant} | {stats.geometric_mean(group['speedup']):.3g}× | {len(group)} |")
    failed = ok[~ok["gate_pass"].astype(bool)]
    lines += ["", f"Cells failing the correctness gate: {len(failed)}"]
    lines += [f"- {r['cell']} / {r['variant']}: dev_qs={r['dev_qs']:.2e}, dev_q_pi={r['dev_q_pi']:.2e}, "
              f"dev_G_rel={r['dev_G_rel']:.2e}, tolerance={r['tolerance']:.0e}, actions differing={int(r['n_action_diff'])}"
              for _, r in failed.iterrows()]
    skipped = df[df["status"] == "skipped"]
    lines += ["", f"Skipped cells: {len(skipped)}"]
    lines += [f"- {r['cell']} / {r['variant']}: {r['reason']}" for _, r in skipped.iterrows()]
    if skipped_files:
        lines += ["", f"**Cell files left out of the merge: {len(skipped_files)}**"]
        lines += [f"- {path}: {reason}" for path, reason in skipped_files.items()]
    return "\n".join(lines) + "\n"


def write_markdown(parquet_path, out_path):
    from pymdpbench.results import skipped_files, write_text

    write_text(out_path, markdown(load(parquet_path), skipped_files(parquet_path)))
