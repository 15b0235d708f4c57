"""Figures from merged study tables (seaborn): one theme, a colour-blind palette and one fixed
colour per variant in every figure, CIs as error bars, log axes where things scale.

A figure is drawn from the merged Parquet alone, so it can be redrawn without rerunning cells.
"""

import os
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import seaborn as sns  # noqa: E402

from matplotlib.colors import LogNorm  # noqa: E402

from pymdpbench import stats, tables  # noqa: E402
from pymdpbench.engines import ENGINES  # noqa: E402

PALETTE = dict(zip(ENGINES, sns.color_palette("colorblind", len(ENGINES))))
LABELS = {"p_states": "hidden states", "p_horizon": "planning horizon (policy length)",
          "p_lr": "learning rate (lr_pA = lr_pB)"}


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


def speedup_heatmap(df, fig):
    """Speed-up over standard per states x actions, one panel per variant.

    Geometric mean over outcome counts; gate-passing cells of random models only; blank where none."""
    sp = tables.speedups(df[df["model"] == "random"])
    sp = sp[sp["gate_pass"]]
    variants = sorted(sp["variant"].unique())
    if not variants:
        fig.add_subplot().set_axis_off()
        return
    axes = fig.subplots(1, len(variants), squeeze=False)[0]
    for ax, variant in zip(axes, variants):
        grid = (sp[sp["variant"] == variant].groupby(["p_states", "p_actions"])["speedup"]
                .agg(stats.geometric_mean).unstack("p_actions").sort_index(ascending=False))
        sns.heatmap(grid, annot=True, fmt=".3g", cmap="viridis", cbar=False, ax=ax, annot_kws={"fontsize": 6},
                    norm=LogNorm(vmin=max(1e-3, sp["speedup"].min()), vmax=max(1.0, sp["speedup"].max())))
        ax.set(title=variant, xlabel="actions", ylabel="hidden states" if ax is axes[0] else "")


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


def learning_curve(df, fig):
    """Goal rate per episode (95 % Wilson band over runs) and time per learning step; T-maze."""
    from pymdpbench.stats import wilson_interval

    ax_goal, ax_time = fig.subplots(1, 2)
    ok = df[df["status"] == "ok"].sort_values(["p_lr", "p_param_info_gain", "variant"])
    configs = list(dict.fromkeys(_learning_config(r) for _, r in ok.iterrows()))
    colours = dict(zip(configs, sns.color_palette("viridis", len(configs))))
    styles = dict(zip(sorted(ok["variant"].unique(), key=lambda v: (v != "standard", v)), ["-", "--", ":", "-."] * 4))
    for _, r in ok.iterrows():
        rate = np.asarray(r["episode_goal_rate"])
        episodes = np.arange(1, len(rate) + 1)
        low, high = wilson_interval(rate, r["learning_runs"])
        config = _learning_config(r)
        ax_goal.plot(episodes, rate, color=colours[config], ls=styles[r["variant"]], lw=1,
                     label=f"{config} ({r['variant']})")
        ax_goal.fill_between(episodes, low, high, color=colours[config], alpha=0.12, lw=0)
        ax_time.plot(episodes, r["episode_step_time_s"], color=_colour(r["variant"]), ls=styles[r["variant"]], lw=0.8)
    ax_goal.set(xlabel="episode", ylabel="goal rate (share of runs)", ylim=(-0.02, 1.02))
    ax_goal.legend(fontsize=5, loc="lower right")
    ax_time.set(yscale="log", xlabel="episode", ylabel="time per learning step (s)")
    for ax in (ax_goal, ax_time):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    for variant in styles:
        ax_time.plot([], [], color=_colour(variant), ls=styles[variant], label=variant)
    ax_time.legend(fontsize=6)


def _learning_config(row):
    return f"lr={row['p_lr']:g}" + (" +info gain" if row["p_param_info_gain"] else "")


def profile_top(df, fig, top=10):
    """Share of profiled time spent in each function itself (cProfile), pymdp's standard agent.

    A function missing for one cell was not among that cell's top functions."""
    from pymdpbench.studies.profile import profile_functions

    ax = fig.add_subplot()
    functions = profile_functions(df[df["variant"] == "standard"])
    if len(functions):
        functions["function"] = functions["function"].map(_short_function)
        sizes = list(functions.sort_values(["p_states", "cell"])["cell"].unique())
        order = functions.groupby("function")["own_share"].max().nlargest(top).index
        sns.barplot(data=functions[functions["function"].isin(order)], y="function", x="own_share", hue="cell",
                    order=order, hue_order=sizes, palette="viridis", ax=ax)
        ax.tick_params(axis="y", labelsize=6)
    ax.set(xlabel="share of profiled time inside the function", ylabel="")


def _short_function(name):
    """``pymdp/legacy/maths.py:517(spm_MDP_G)`` -> ``maths.py:spm_MDP_G``; built-ins as they are."""
    if "(" not in name or name.startswith("<"):
        return name
    location, function = name.split("(", 1)
    return f"{location.split(':')[0].rsplit('/', 1)[-1]}:{function.rstrip(')')}"


FIGURES = {f.__name__: f for f in (scaling, horizon, speedup, speedup_heatmap, deviation, learning_curve, profile_top)}


def render(name, parquet_path, out_paths, width_in=6.5, height_in=3.2):
    """Draw figure ``name`` of a merged study table and save it to each path (format from the suffix)."""
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind")
    df = tables.load(parquet_path)
    fig = plt.figure(figsize=(width_in, height_in), layout="constrained")
    if (df["status"] == "ok").any():
        FIGURES[name](df, fig)
    else:
        no_measured_cells(df, fig)
    fig.suptitle(f"{df['study'].iloc[0]}: {FIGURES[name].__doc__.splitlines()[0]}", fontsize=8)
    for path in out_paths:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp.{os.getpid()}.{path.name}")
        fig.savefig(tmp, dpi=200, metadata={"CreationDate": None} if path.suffix == ".pdf" else None)
        os.replace(tmp, path)
    plt.close(fig)


def no_measured_cells(df, fig):
    """The figure of a study none of whose cells was measured: it says so, and where the reasons are."""
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, f"{df['study'].iloc[0]}: no measured cells\nall {len(df)} cells were skipped "
            f"(reasons: results/tables/{df['study'].iloc[0]}.md)", ha="center", va="center", fontsize=9)


def _memory_vs_size(df, fig, column, ylabel):
    """``column`` against states, log-log, a colour per variant and a line style per density; ok cells only
    (a variant's line ends at the largest model it holds under the cap)."""
    ax = fig.add_subplot()
    ok = df[(df["status"] == "ok") & df[column].notna()].copy()
    ok["density"] = ok["p_density"].map("{:g}".format)
    if len(ok):
        sns.lineplot(data=ok, x="p_states", y=column, hue="variant", style="density", markers=True,
                     palette=palette(ok), ax=ax, errorbar=None)
    ax.set(xscale="log", yscale="log", xlabel=LABELS["p_states"], ylabel=ylabel)


def model_bytes(df, fig):
    """Bytes of A and B as each variant holds them, against model size"""
    _memory_vs_size(df, fig, "model_bytes", "model bytes (A and B as held)")


def traced_peak(df, fig):
    """tracemalloc peak during steps (Python and numpy allocations), against model size"""
    _memory_vs_size(df, fig, "tracemalloc_peak_bytes", "tracemalloc peak during steps (bytes)")


def rss_peak(df, fig):
    """Peak resident set size of the cell process during steps, against model size"""
    _memory_vs_size(df, fig, "rss_peak_bytes", "RSS peak during steps (bytes)")


def throughput(df, fig):
    """Agent steps per second against batch size, a colour per variant and a line style per batch mode"""
    ax = fig.add_subplot()
    ok = df[(df["status"] == "ok") & df["throughput_agent_steps_s"].notna()]
    if len(ok):
        sns.lineplot(data=ok, x="p_batch_size", y="throughput_agent_steps_s", hue="variant", style="p_batch_mode",
                     markers=True, palette=palette(ok), ax=ax, errorbar=None)
    ax.set(xscale="log", yscale="log", xlabel="batch size (agents)", ylabel="throughput (agent steps / s)")


FIGURES.update({f.__name__: f for f in (model_bytes, traced_peak, rss_peak, throughput)})
