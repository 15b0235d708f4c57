"""Tables from merged study results: per-cell medians with CIs, speed-ups over the standard agent
with CIs and significance, and the cells that failed the correctness gate."""

import numpy as np
import pandas as pd

from pymdpbench import stats

#: the grid axis that varies most in each study (x of its figures)
X_AXIS = {"planning": "p_horizon", "learning": "p_lr"}


def x_axis(study):
    return X_AXIS.get(study, "p_states")


def load(path):
    return pd.read_parquet(path)


def speedups(df):
    """One row per (cell, variant other than standard) that ran: speed-up over standard with its
    bootstrap CI, Mann–Whitney p-value and Benjamini–Hochberg adjusted p-value over all comparisons
    (on per-process medians where the cells were timed in several processes).

    Only cells that passed the correctness gate get a speed-up; a failed cell keeps NaN and
    ``gate_pass = False``, so it is listed, never dropped, and never counted.
    """
    ok = df[df["status"] == "ok"]
    reference = ok[ok["variant"] == "standard"].set_index("cell")
    point_columns = [c for c in df.columns if c.startswith("p_")] + ["model"]
    out = []
    for _, row in ok[ok["variant"] != "standard"].iterrows():
        if row["cell"] not in reference.index:
            continue
        base = reference.loc[row["cell"]]
        entry = {
            "study": row["study"],
            "cell": row["cell"],
            "variant": row["variant"],
            **{c: row[c] for c in point_columns},
            "gate_pass": bool(row["gate_pass"]),
        }
        if row["gate_pass"]:
            entry.update(
                stats.speedup(
                    stats.timing_units(base["samples_s"], base.get("sample_process")),
                    stats.timing_units(row["samples_s"], row.get("sample_process")),
                    seed=int(row["seed"]) % 2**32,
                )
            )
        else:
            entry.update({"speedup": np.nan, "speedup_ci_low": np.nan, "speedup_ci_high": np.nan, "p_value": np.nan})
        out.append(entry)
    table = pd.DataFrame(
        out,
        columns=[
            "study",
            "cell",
            "variant",
            *point_columns,
            "gate_pass",
            "speedup",
            "speedup_ci_low",
            "speedup_ci_high",
            "p_value",
        ],
    )
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


def largest_models(df):
    """Per variant and density, the largest model (states, model bytes) it ran with status ok, and the
    smallest one it skipped (with the reason): the largest model each variant holds under the cap."""
    out = []
    for (variant, density), group in df.groupby(["variant", "p_density"], sort=True):
        ok = group[group["status"] == "ok"]
        skipped = group[(group["status"] == "skipped") & (group["p_states"] > (ok["p_states"].max() if len(ok) else 0))]
        largest = ok.loc[ok["p_states"].idxmax()] if len(ok) else None
        first_out = skipped.loc[skipped["p_states"].idxmin()] if len(skipped) else None
        out.append(
            {
                "variant": variant,
                "p_density": density,
                "largest_states": None if largest is None else int(largest["p_states"]),
                "model_bytes": None if largest is None else int(largest["model_bytes"]),
                "first_skipped_states": None if first_out is None else int(first_out["p_states"]),
                "skipped_reason": "" if first_out is None else first_out["reason"],
            }
        )
    return pd.DataFrame(
        out, columns=["variant", "p_density", "largest_states", "model_bytes", "first_skipped_states", "skipped_reason"]
    )


def _memory_section(df):
    lines = [
        "",
        "## Largest model each variant holds",
        "",
        "| variant | density | largest states run | its model bytes | next size, skipped because |",
        "|---|---|---|---|---|",
    ]
    for _, r in largest_models(df).iterrows():
        size = "none" if pd.isna(r["largest_states"]) else f"{int(r['largest_states'])}"
        nbytes = "" if pd.isna(r["model_bytes"]) else f"{r['model_bytes'] / 2**20:.3g} MiB"
        nxt = "" if pd.isna(r["first_skipped_states"]) else f"{int(r['first_skipped_states'])}: {r['skipped_reason']}"
        lines.append(f"| {r['variant']} | {r['p_density']:g} | {size} | {nbytes} | {nxt} |")
    return lines


def _batch_section(df):
    lines = [
        "",
        "## Throughput (agent steps per second)",
        "",
        "| mode | batch size | variant | agent-steps/s | processes | note |",
        "|---|---|---|---|---|---|",
    ]
    rows = df.sort_values(["p_batch_mode", "p_batch_size", "variant"])
    for _, r in rows.iterrows():
        rate = "–" if pd.isna(r["throughput_agent_steps_s"]) else f"{r['throughput_agent_steps_s']:.4g}"
        workers = "" if pd.isna(r["batch_workers"]) else f"{int(r['batch_workers'])}"
        lines.append(
            f"| {r['p_batch_mode']} | {int(r['p_batch_size'])} | {r['variant']} | {rate} | {workers} | {r['reason']} |"
        )
    return lines


def _learning_section(df):
    """What each learning configuration learned on the T-maze, per variant."""
    ok = df[df["status"] == "ok"].sort_values(["p_lr", "p_param_info_gain", "variant"])
    lines = [
        "",
        "## Learning on the T-maze",
        "",
        "| cell | variant | runs | goal rate, first 5 episodes | goal rate, last 5 episodes | episodes to converge "
        "| time per learning step (median over episodes) |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in ok.iterrows():
        rate = np.asarray(r["episode_goal_rate"])
        lines.append(
            f"| {r['cell']} | {r['variant']} | {int(r['learning_runs'])} | {rate[:5].mean():.2f} | "
            f"{r['final_goal_rate']:.2f} | {int(r['episodes_to_converge'])} | "
            f"{_fmt_time(float(np.median(r['episode_step_time_s'])))} |"
        )
    lines += [
        "",
        "Episodes to converge: the first episode from which the 5-episode rolling goal rate stays "
        "within 0.1 of its final value.",
    ]
    return lines


def _profile_section(df, top=10):
    """The top functions (rows) by share of own time, one column per cell, per variant."""
    from pymdpbench.studies.profile import profile_functions

    functions = profile_functions(df)
    lines = []
    for variant, group in functions.groupby("variant", sort=False):
        shares = group.pivot_table(index="function", columns="cell", values="own_share", aggfunc="first")
        calls = group.groupby("function")["calls_per_step"].max()
        shares = shares.loc[shares.max(axis=1).nlargest(top).index]
        lines += [
            "",
            f"## Profile: {variant} (share of profiled time inside the function itself)",
            "",
            "| function | calls per step (max) | " + " | ".join(shares.columns) + " |",
            "|---|---|" + "---|" * len(shares.columns),
        ]
        for name, row in shares.iterrows():
            values = " | ".join("" if np.isnan(v) else f"{100 * v:.1f} %" for v in row)
            lines.append(f"| `{name}` | {calls[name]:.3g} | {values} |")
    return lines


#: study -> extra markdown lines after the common tables
STUDY_SECTIONS = {
    "memory": _memory_section,
    "batch": _batch_section,
    "learning": _learning_section,
    "profile": _profile_section,
}


def markdown(df, skipped_files=None):
    """The study's markdown table: times with CIs, speed-ups with CIs, gate results, skipped cells,
    and cell files the merge left out (``skip_bad_cells``)."""
    study = df["study"].iloc[0]
    ok = df[df["status"] == "ok"].sort_values([x_axis(study), "cell", "variant"])
    sp = speedups(df).set_index(["cell", "variant"])
    lines = [
        f"# {study}",
        "",
        "| cell | variant | step time (median) | 95 % CI | speed-up vs standard (95 % CI) | p (BH) | max deviation | gate |",
        "|---|---|---|---|---|---|---|---|",
    ]
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
        if pd.isna(r["gate_pass"]):
            gate = r["reason"] or "not run"
        else:
            gate = "pass" if r["gate_pass"] else f"**FAIL**: {gate_failure(r)}"
        stable = "" if r["stable"] else " (unstable)"
        lines.append(
            f"| {r['cell']} | {r['variant']} | {_fmt_time(r['step_time_s'])}{stable} | "
            f"{_fmt_time(r['ci_low_s'])}–{_fmt_time(r['ci_high_s'])} | {speed} | {p_adj} | {dev:.1e} | {gate} |"
        )
    passing = speedups(df)
    passing = passing[passing["gate_pass"]]
    if len(passing):
        lines += ["", "| variant | geometric-mean speed-up over passing cells | cells |", "|---|---|---|"]
        for variant, group in passing.groupby("variant"):
            lines.append(f"| {variant} | {stats.geometric_mean(group['speedup']):.3g}× | {len(group)} |")
    failed = ok[ok["gate_pass"].eq(False)]  # null (no reference) is not a failure
    lines += ["", f"Cells failing the correctness gate: {len(failed)}"]
    lines += [
        f"- {r['cell']} / {r['variant']}: dev_qs={r['dev_qs']:.2e}, dev_q_pi={r['dev_q_pi']:.2e}, "
        f"dev_G_rel={r['dev_G_rel']:.2e}, tolerance={r['tolerance']:.0e}, actions differing={int(r['n_action_diff'])}"
        for _, r in failed.iterrows()
    ]
    if ok.empty:
        lines += ["", f"**No measured cells: all {len(df)} cells of this study were skipped (reasons below).**"]
    lines += STUDY_SECTIONS.get(study, lambda _: [])(df)
    skipped = df[df["status"] == "skipped"]
    lines += ["", f"Skipped cells: {len(skipped)}"]
    lines += [f"- {r['cell']} / {r['variant']}: {r['reason']}" for _, r in skipped.iterrows()]
    if skipped_files:
        lines += ["", f"**Cell files left out of the merge: {len(skipped_files)}**"]
        lines += [f"- {path}: {reason}" for path, reason in skipped_files.items()]
    return "\n".join(lines) + "\n"


def latex(df):
    """A booktabs LaTeX table: median time with 95 % CI and speed-up with 95 % CI per cell and variant,
    a geometric-mean row per variant; cells failing the gate are marked and not counted."""
    study = df["study"].iloc[0]
    ok = df[df["status"] == "ok"].sort_values([x_axis(study), "cell", "variant"])
    sp = speedups(df).set_index(["cell", "variant"])
    lines = [
        r"\begin{tabular}{llrrl}",
        r"\toprule",
        r"cell & variant & time per step & 95\,\% CI & speed-up (95\,\% CI) \\",
        r"\midrule",
    ]
    for _, r in ok.iterrows():
        speed = "reference"
        if r["variant"] != "standard" and (r["cell"], r["variant"]) in sp.index:
            s = sp.loc[(r["cell"], r["variant"])]
            speed = (
                f"{_tex_number(s['speedup'])}$\\times$ ({_tex_number(s['speedup_ci_low'])}--"
                f"{_tex_number(s['speedup_ci_high'])})"
                if s["gate_pass"]
                else r"gate failed$^\dagger$"
            )
        lines.append(
            f"{_tex(r['cell'])} & {_tex(r['variant'])} & {_tex(_fmt_time(r['step_time_s']))} & "
            f"{_tex(_fmt_time(r['ci_low_s']))}--{_tex(_fmt_time(r['ci_high_s']))} & {speed} \\\\"
        )
    passing = speedups(df)
    passing = passing[passing["gate_pass"]]
    if len(passing):
        lines.append(r"\midrule")
        for variant, group in passing.groupby("variant"):
            lines.append(
                f"geometric mean & {_tex(variant)} & & & {_tex_number(stats.geometric_mean(group['speedup']))}$\\times$ \\\\"
            )
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


GATE_DEVIATIONS = {"dev_qs": "qs", "dev_q_pi": "q_pi", "dev_G_rel": "G (scaled)"}


def gate_failure(row):
    """Why a row failed the gate, naming each cause: the deviations over tolerance with their
    values, and the differing actions; e.g. ``q_pi deviates 4.3e-02 > tolerance 1e-04``."""
    causes = [
        f"{name} deviates {row[column]:.1e} > tolerance {row['tolerance']:.0e}"
        for column, name in GATE_DEVIATIONS.items()
        if row[column] > row["tolerance"]
    ]
    if row["n_action_diff"]:
        causes.append(f"{int(row['n_action_diff'])} of the gate steps chose another action")
    return "; ".join(causes) or "no deviation over tolerance recorded"


def _tex(text):
    return (
        str(text)
        .replace("\\", r"\textbackslash{}")
        .replace("_", r"\_")
        .replace("%", r"\%")
        .replace("&", r"\&")
        .replace("µ", r"\textmu{}")
    )


def headline_numbers(frames):
    """The numbers a paper quotes, from the merged tables of all studies: per variant the largest
    and geometric-mean speed-up over standard (gate-passing cells only), the largest model it ran,
    the correctness margin (largest deviation over tolerance), and the cells that failed the gate."""
    df = pd.concat(frames, ignore_index=True)
    sp = pd.concat([speedups(f) for f in frames], ignore_index=True)
    numbers = {"cells": int(len(df)), "cells_ok": int((df["status"] == "ok").sum()), "variants": {}}
    for variant, group in df[df["status"] == "ok"].groupby("variant"):
        entry = {
            "largest_states": int(group["p_states"].max()),
            "cells_failing_gate": int(group["gate_pass"].eq(False).sum()),
        }
        if variant != "standard":
            deviation = group[["dev_qs", "dev_q_pi", "dev_G_rel"]].max(axis=1)
            entry["max_deviation"] = float(deviation.max())
            entry["correctness_margin"] = float(deviation.max() / group["tolerance"].max())
            mine = sp[(sp["variant"] == variant) & sp["gate_pass"]]
            if len(mine):
                best = mine.loc[mine["speedup"].idxmax()]
                entry.update(
                    {
                        "max_speedup": float(best["speedup"]),
                        "max_speedup_cell": f"{best['study']}/{best['cell']}",
                        "geomean_speedup": stats.geometric_mean(mine["speedup"]),
                    }
                )
        numbers["variants"][variant] = entry
    return numbers


def _tex_number(value):
    """A number as a paper prints it, in plain LaTeX: 3 significant digits, thousands separated by
    a thin space, below 0.01 a power of ten in ``\\ensuremath`` (text or math mode alike)."""
    if isinstance(value, int):
        return f"{value:,}".replace(",", "\\,")
    if value == 0 or not np.isfinite(value):
        return f"{value:g}"
    if abs(value) < 1e-2:
        mantissa, exponent = f"{value:.2e}".split("e")
        return f"\\ensuremath{{{float(mantissa):.3g}\\times10^{{{int(exponent)}}}}}"
    digits = 2 - int(np.floor(np.log10(abs(value))))  # negative above 999: 69,966 -> 70,000
    text = f"{round(value, digits):,.{max(0, digits)}f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text).replace(",", "\\,")


def numbers_tex(numbers):
    """``\\newcommand`` macros for the text, e.g. ``\\numbaMaxSpeedup``: numbers in plain LaTeX
    (``7\\,660``, ``\\ensuremath{4.3\\times10^{-3}}``) that typeset without any package."""
    digits = dict(zip("0123456789", ["Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine"]))
    lines = [f"\\newcommand{{\\benchCells}}{{{numbers['cells']}}}"]
    for variant, entry in numbers["variants"].items():
        stem = "".join(digits.get(ch, ch) for ch in variant if ch.isalnum())
        for key, value in entry.items():
            name = stem + "".join(part.capitalize() for part in key.split("_"))
            text = (
                _tex_number(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else _tex(value)
            )
            lines.append(f"\\newcommand{{\\{name}}}{{{text}}}")
    return "\n".join(lines) + "\n"


def write_tables(parquet_path, markdown_path, latex_path):
    from pymdpbench.results import skipped_files, write_text

    df = load(parquet_path)
    write_text(markdown_path, markdown(df, skipped_files(parquet_path)))
    write_text(latex_path, latex(df))


def write_numbers(parquet_paths, json_path, tex_path):
    import json

    from pymdpbench.results import write_text

    numbers = headline_numbers([load(p) for p in parquet_paths])
    write_text(json_path, json.dumps(numbers, indent=2, sort_keys=True) + "\n")
    write_text(tex_path, numbers_tex(numbers))
