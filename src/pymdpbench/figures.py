"""Figures from merged study tables (seaborn): one theme, a colour-blind palette and one fixed
colour per variant in every figure, CIs as error bars, log axes where things scale.

A figure is drawn from the merged Parquet alone, so it can be redrawn without rerunning cells.
"""

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from pymdpbench import tables  # noqa: E402
from pymdpbench.engines import ENGINES  # noqa: E402

PALETTE = dict(zip(ENGINES, sns.color_palette("colorblind", len(ENGINES))))
LABELS = {"p_states": "hidden states", "p_horizon": "planning horizon (policy length)"}


def _colour(variant):
    """The variant's fixed colour; variants outside the registry share a dark grey."""
    return PALETTE.get(variant, (0.3, 0.3, 0.3))


def palette(df):
    return {variant: _colour(variant) for variant in df["variant"].unique()}


def _errorbars(ax, data, x, y, low, high):
    for variant, group in data.groupby("variant"):
        group = group.sort_values(x)
        ax.errorbar(group[x], group[y], yerr=[group[y] - group[low], group[high] - group[y]],
                    fmt="none", ecolor=_colour(variant), capsize=2, lw=0.8)


def scaling(df, fig):
    """Time per step against states, log-log, one line per variant (and actions); random models."""
    ax = fig.add_subplot()
    ok = df[(df["status"] == "ok") & (df["model"] == "random")]
    sns.lineplot(data=ok, x="p_states", y="step_time_s", hue="variant", style="p_actions", markers=True,
                 palette=palette(df), ax=ax, errorbar=None)
    _errorbars(ax, ok, "p_states", "step_time_s", "ci_low_s", "ci_high_s")
    ax.set(xscale="log", yscale="log", xlabel=LABELS["p_states"], ylabel="time per step (s, median, 95 % CI)")


def horizon(df, fig):
    """Time per step and number of policies against the planning horizon; random models."""
    ok = df[(df["status"] == "ok") & (df["model"] == "random")]
    ax_time, ax_pol = fig.subplots(1, 2)
    sns.lineplot(data=ok, x="p_horizon", y="step_time_s", hue="variant", marker="o", palette=palette(df),
                 ax=ax_time, errorbar=None)
    _errorbars(ax_time, ok, "p_horizon", "step_time_s", "ci_low_s", "ci_high_s")
    ax_time.set(yscale="log", xlabel=LABELS["p_horizon"], ylabel="infer_states + infer_policies (s)")
    policies = ok.drop_duplicates("p_horizon")
    sns.lineplot(data=policies, x="p_horizon", y="n_policies", marker="o", color="0.2", ax=ax_pol)
    ax_pol.set(yscale="log", xlabel=LABELS["p_horizon"], ylabel="number of policies")


def speedup(df, fig):
    """Speed-up over pymdp's standard agent with 95 % CI; only cells that passed the gate."""
    ax = fig.add_subplot()
    study = df["study"].iloc[0]
    x = tables.x_axis(study)
    sp = tables.speedups(df)
    sp = sp[sp["gate_pass"]]
    if len(sp):
        sns.lineplot(data=sp, x=x, y="speedup", hue="variant", marker="o", palette=palette(df), ax=ax, errorbar=None,
                     estimator="median")
        _errorbars(ax, sp, x, "speedup", "speedup_ci_low", "speedup_ci_high")
    ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
    ax.set(yscale="log", xlabel=LABELS[x], ylabel="speed-up over standard (×)")
    if x == "p_states":
        ax.set_xscale("log")


def deviation(df, fig):
    """Largest deviation from the standard agent (qs, q_pi, scaled G) per variant, with each tolerance."""
    ax = fig.add_subplot()
    study = df["study"].iloc[0]
    x = tables.x_axis(study)
    ok = df[(df["status"] == "ok") & (df["variant"] != "standard")].copy()
    ok["max_deviation"] = ok[["dev_qs", "dev_q_pi", "dev_G_rel"]].max(axis=1).clip(lower=1e-17)
    if len(ok):
        sns.scatterplot(data=ok, x=x, y="max_deviation", hue="variant", style="gate_pass", palette=palette(df), ax=ax)
        for variant, group in ok.groupby("variant"):
            ax.axhline(group["tolerance"].iloc[0], color=_colour(variant), lw=0.8, ls=":")
    ax.set(yscale="log", xlabel=LABELS[x], ylabel="max |deviation| from standard (dotted: tolerance)")
    if x == "p_states":
        ax.set_xscale("log")


FIGURES = {f.__name__: f for f in (scaling, horizon, speedup, deviation)}


def render(name, parquet_path, out_paths, width_in=6.5, height_in=3.2):
    """Draw figure ``name`` of a merged study table and save it to each path (format from the suffix)."""
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind")
    df = tables.load(parquet_path)
    fig = plt.figure(figsize=(width_in, height_in), layout="constrained")
    FIGURES[name](df, fig)
    fig.suptitle(f"{df['study'].iloc[0]}: {FIGURES[name].__doc__.splitlines()[0]}", fontsize=8)
    for path in out_paths:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp.{os.getpid()}.{path.name}")
        fig.savefig(tmp, dpi=200, metadata={"CreationDate": None} if path.suffix == ".pdf" else None)
        os.replace(tmp, path)
    plt.close(fig)
