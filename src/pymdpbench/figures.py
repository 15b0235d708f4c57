"""Figures from merged study tables (seaborn): one theme, a colour-blind palette and one fixed
colour per variant in every figure, CIs as error bars, log axes where things scale.

A figure is drawn from the merged Parquet alone, so it can be redrawn without rerunning cells.
Print conventions: no title in the image (the caption lives in the report, workflow/report/, and
in the paper); units in axis labels (µs/ms/s chosen from the data, MiB); counts (states, actions,
horizon, batch size) get their own values as plain integer ticks; legend titles in words, legends
outside the axes so they never cover data.
"""

import os
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")
import matplotlib.cm  # noqa: E402
import matplotlib.lines  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from pymdpbench import stats, tables  # noqa: E402
from pymdpbench.engines import ENGINES  # noqa: E402

PALETTE = dict(zip(ENGINES, sns.color_palette("colorblind", len(ENGINES))))
LABELS = {
    "p_states": "hidden states",
    "p_horizon": "planning horizon (policy length)",
    "p_lr": "learning rate (lr_pA = lr_pB)",
}
#: columns as legend titles
LEGEND_TITLES = {
    "variant": "variant",
    "p_algorithm": "planning",
    "p_actions": "actions",
    "p_batch_mode": "batch mode",
    "density": "density",
    "gate": "gate",
    "cell": "grid cell",
}
MIB = 2**20
#: grid axes that count things: ticks at their values, as plain integers
COUNT_AXES = {"p_states", "p_horizon", "p_batch_size", "p_actions", "n_policies"}


def _time_unit(seconds):
    """(factor, unit) that puts the largest time in ``seconds`` in a readable range."""
    largest = np.nanmax(np.asarray(seconds, dtype=float)) if len(seconds) else 1.0
    for factor, unit in ((1e6, "µs"), (1e3, "ms")):
        if largest * factor < 1e4:
            return factor, unit
    return 1.0, "s"


def _count_ticks(ax, column, values, axis="x"):
    """Ticks of a count axis at the values the grid holds, printed as plain integers (no 4×10⁰)."""
    if column not in COUNT_AXES or not len(values):
        return
    target = ax.xaxis if axis == "x" else ax.yaxis
    ticks = sorted({int(v) for v in values if np.isfinite(v)})
    target.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    target.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{int(round(v)):,}"))
    target.set_minor_locator(matplotlib.ticker.NullLocator())
    if axis == "x" and len(ticks) > 6:
        ax.tick_params(axis="x", labelrotation=45)


def _readable(value, _=None):
    """A tick label without exponents where a reader needs none: 0.01 … 999,999 as plain numbers."""
    if value <= 0:
        return ""
    if 1e-2 <= value < 1e6:
        return f"{value:,.6g}"
    exponent = int(np.floor(np.log10(value)))
    mantissa = value / 10**exponent
    return f"$10^{{{exponent}}}$" if np.isclose(mantissa, 1) else f"${mantissa:.2g}\\times10^{{{exponent}}}$"


def _log_axis(ax, values, axis="y"):
    """A log axis labelled in plain numbers (majors only); a linear one where the values span less
    than a factor of 10 (a log axis then has no major tick and labels its minor ones as 8.5×10²)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    target = ax.yaxis if axis == "y" else ax.xaxis
    if len(values) and values.max() < 10 * values.min():
        (ax.set_yscale if axis == "y" else ax.set_xscale)("linear")
        target.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.6g}"))
        return
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    if len(values) and values.max() < 1000 * values.min():  # few decades: label 1, 2, 5 of each
        target.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(matplotlib.ticker.FuncFormatter(_readable))
    target.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _legend_outside(ax, titles=LEGEND_TITLES):
    """The axes' legend moved to the right of the axes, its section titles in words."""
    legend = ax.get_legend()
    if legend is None:
        return
    for text in legend.get_texts():
        text.set_text(titles.get(text.get_text(), text.get_text()))
    if legend.get_title().get_text():
        legend.set_title(titles.get(legend.get_title().get_text(), legend.get_title().get_text()))
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1), frameon=False, fontsize=7, title_fontsize=7)


def _colour(variant):
    """The variant's fixed colour; variants outside the registry share a dark grey."""
    return PALETTE.get(variant, (0.3, 0.3, 0.3))


def palette(df):
    return {variant: _colour(variant) for variant in df["variant"].unique()}


def variant_order(df):
    """The variants of ``df`` in registry order, so that every legend lists them alike."""
    present = set(df["variant"].unique())
    return [v for v in ENGINES if v in present] + sorted(present - set(ENGINES))


def _errorbars(ax, data, x, y, low, high):
    for variant, group in data.groupby("variant"):
        group = group.sort_values(x)
        ax.errorbar(
            group[x],
            group[y],
            yerr=[group[y] - group[low], group[high] - group[y]],
            fmt="none",
            ecolor=_colour(variant),
            capsize=2,
            lw=0.8,
        )


def scaling(df, fig):
    """Time per step against states, log-log, one line per variant (and actions); random models."""
    ax = fig.add_subplot()
    ok = _in_unit(df[(df["status"] == "ok") & (df["model"] == "random")], *_time_unit(df["step_time_s"].dropna()))
    sns.lineplot(
        data=ok,
        x="p_states",
        y="step_time",
        hue="variant",
        style="p_actions",
        markers=True,
        hue_order=variant_order(ok),
        palette=palette(df),
        ax=ax,
        errorbar=None,
    )
    _errorbars(ax, ok, "p_states", "step_time", "ci_low", "ci_high")
    ax.set(
        xscale="log", xlabel=LABELS["p_states"], ylabel=f"time per step ({ok.attrs.get('unit', 's')}, median, 95 % CI)"
    )
    _log_axis(ax, pd.concat([ok["ci_low"], ok["ci_high"]]))
    _count_ticks(ax, "p_states", ok["p_states"])
    _legend_outside(ax)


def _in_unit(df, factor, unit):
    """``df`` with step_time, ci_low, ci_high: the seconds columns times ``factor``; the unit in attrs."""
    df = df.copy()
    for column, source in (("step_time", "step_time_s"), ("ci_low", "ci_low_s"), ("ci_high", "ci_high_s")):
        df[column] = df[source] * factor
    df.attrs["unit"] = unit
    return df


def _scheme(df):
    """The planning scheme as a line style where a table holds several (vanilla, MMP, sophisticated)."""
    return "p_algorithm" if "p_algorithm" in df and df["p_algorithm"].nunique() > 1 else None


def horizon(df, fig):
    """Time per step and number of policies against the planning horizon; random models."""
    ok = df[(df["status"] == "ok") & (df["model"] == "random")]
    ok = _in_unit(ok, *_time_unit(ok["step_time_s"].dropna()))
    ax_time, ax_pol = fig.subplots(1, 2, width_ratios=[3, 2])
    sns.lineplot(
        data=ok,
        x="p_horizon",
        y="step_time",
        hue="variant",
        marker="o",
        hue_order=variant_order(ok),
        palette=palette(df),
        ax=ax_time,
        errorbar=None,
        style=_scheme(ok),
    )
    _errorbars(ax_time, ok, "p_horizon", "step_time", "ci_low", "ci_high")
    ax_time.set(xlabel="policy length", ylabel=f"infer_states + infer_policies ({ok.attrs['unit']})")
    _log_axis(ax_time, pd.concat([ok["ci_low"], ok["ci_high"]]))
    policies = ok.drop_duplicates("p_horizon")
    sns.lineplot(data=policies, x="p_horizon", y="n_policies", marker="o", color="0.2", ax=ax_pol)
    ax_pol.set(yscale="log", xlabel="policy length", ylabel="number of policies")
    _count_ticks(ax_pol, "n_policies", policies["n_policies"], axis="y")
    for ax in (ax_time, ax_pol):
        _count_ticks(ax, "p_horizon", ok["p_horizon"])
    _legend_outside(ax_time)


def speedup(df, fig):
    """Speed-up over pymdp's standard agent with 95 % CI; only cells that passed the gate."""
    ax = fig.add_subplot()
    study = df["study"].iloc[0]
    x = tables.x_axis(study)
    sp = tables.speedups(df)
    sp = sp[sp["gate_pass"]]
    if len(sp):
        sns.lineplot(
            data=sp,
            x=x,
            y="speedup",
            hue="variant",
            marker="o",
            hue_order=variant_order(sp),
            palette=palette(df),
            ax=ax,
            errorbar=None,
            estimator="median",
            style=_scheme(sp),
        )
        _errorbars(ax, sp, x, "speedup", "speedup_ci_low", "speedup_ci_high")
    ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
    ax.set(xlabel=LABELS[x], ylabel="speed-up over standard (×)")
    _log_axis(ax, [*sp["speedup_ci_low"], *sp["speedup_ci_high"], 0.5, 5.0])  # always log: 1 is the reference
    if x == "p_states":
        ax.set_xscale("log")
    _count_ticks(ax, x, sp[x])
    _legend_outside(ax)


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
    norm = LogNorm(vmin=max(1e-3, min(sp["speedup"].min(), 1.0)), vmax=max(1.0, sp["speedup"].max()) * 1.0001)
    for ax, variant in zip(axes, variants):
        grid = (
            sp[sp["variant"] == variant]
            .groupby(["p_states", "p_actions"])["speedup"]
            .agg(stats.geometric_mean)
            .unstack("p_actions")
            .sort_index(ascending=False)
        )
        sns.heatmap(
            grid,
            annot=grid.map(_speedup_text),
            fmt="",
            cmap="viridis",
            cbar=False,
            ax=ax,
            annot_kws={"fontsize": 6},
            norm=norm,
        )
        ax.set(title=variant, xlabel="actions", ylabel="hidden states" if ax is axes[0] else "")
        ax.tick_params(axis="y", labelrotation=0)
    fig.colorbar(
        matplotlib.cm.ScalarMappable(norm=norm, cmap="viridis"),
        ax=list(axes),
        label="speed-up over standard (×, log scale)",
        shrink=0.9,
    )


def _speedup_text(value):
    """A speed-up as printed in a cell: 3 significant digits, no exponent (2,430 not 2.43e+03)."""
    if not np.isfinite(value):
        return ""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def deviation(df, fig):
    """Largest deviation from the standard agent (qs, q_pi, scaled G) per variant, with each tolerance."""
    ax = fig.add_subplot()
    study = df["study"].iloc[0]
    x = tables.x_axis(study)
    ok = df[(df["status"] == "ok") & (df["variant"] != "standard")].copy()
    ok["max_deviation"] = ok[["dev_qs", "dev_q_pi", "dev_G_rel"]].max(axis=1).clip(lower=1e-17)
    ok["gate"] = ok["gate_pass"].map({True: "pass", False: "fail"}).fillna("no reference")
    if len(ok):
        sns.scatterplot(
            data=ok,
            x=x,
            y="max_deviation",
            hue="variant",
            style="gate",
            style_order=[g for g in ("pass", "fail", "no reference") if g in set(ok["gate"])],
            hue_order=variant_order(ok),
            palette=palette(df),
            ax=ax,
        )
        for variant, group in ok.groupby("variant"):
            ax.axhline(group["tolerance"].iloc[0], color=_colour(variant), lw=0.8, ls=":")
        legend = ax.get_legend()
        tolerance = matplotlib.lines.Line2D([], [], color="0.3", lw=0.8, ls=":")
        ax.legend(
            [*legend.legend_handles, tolerance],
            [*(t.get_text() for t in legend.get_texts()), "tolerance (dotted, per variant)"],
        )
    ax.set(yscale="log", xlabel=LABELS[x], ylabel="max |deviation| from standard")
    if x == "p_states":
        ax.set_xscale("log")
    _count_ticks(ax, x, ok[x])
    _legend_outside(ax)


def learning_curve(df, fig):
    """Goal rate per episode (95 % Wilson band over runs) and time per learning step; T-maze."""
    from pymdpbench.stats import wilson_interval

    ax_goal, ax_time = fig.subplots(1, 2)
    ok = df[df["status"] == "ok"].sort_values(["p_lr", "p_param_info_gain", "variant"])
    configs = list(dict.fromkeys(_learning_config(r) for _, r in ok.iterrows()))
    colours = dict(zip(configs, sns.color_palette("viridis", len(configs))))
    styles = dict(zip(sorted(ok["variant"].unique(), key=lambda v: (v != "standard", v)), ["-", "--", ":", "-."] * 4))
    factor, unit = _time_unit(np.concatenate([np.asarray(t) for t in ok["episode_step_time_s"]]) if len(ok) else [])
    for _, r in ok.iterrows():
        rate = np.asarray(r["episode_goal_rate"])
        episodes = np.arange(1, len(rate) + 1)
        low, high = wilson_interval(rate, r["learning_runs"])
        config = _learning_config(r)
        ax_goal.plot(
            episodes, rate, color=colours[config], ls=styles[r["variant"]], lw=1, label=f"{config} ({r['variant']})"
        )
        ax_goal.fill_between(episodes, low, high, color=colours[config], alpha=0.12, lw=0)
        ax_time.plot(
            episodes,
            np.asarray(r["episode_step_time_s"]) * factor,
            color=_colour(r["variant"]),
            ls=styles[r["variant"]],
            lw=0.8,
        )
    ax_goal.set(xlabel="episode", ylabel="goal rate (share of runs)", ylim=(-0.02, 1.02))
    ax_time.set(xlabel="episode", ylabel=f"time per learning step ({unit})")
    _log_axis(ax_time, [t * factor for times in ok["episode_step_time_s"] for t in times])
    for ax in (ax_goal, ax_time):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    # one legend beside both panels: learning configuration (colour, left), variant (colour right, line style both)
    blank = matplotlib.lines.Line2D([], [], lw=0)
    handles = [
        blank,
        *(matplotlib.lines.Line2D([], [], color=colours[c], lw=1.5) for c in configs),
        blank,
        *(matplotlib.lines.Line2D([], [], color=_colour(v), ls=styles[v], lw=1) for v in styles),
    ]
    labels = ["learning (left, colour)", *configs, "variant (line style)", *styles]
    fig.legend(handles, labels, loc="outside right upper", frameon=False, fontsize=7, handlelength=2.5)


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
        sns.barplot(
            data=functions[functions["function"].isin(order)],
            y="function",
            x="own_share",
            hue="cell",
            order=order,
            hue_order=sizes,
            palette="viridis",
            ax=ax,
        )
        ax.tick_params(axis="y", labelsize=6)
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
        _legend_outside(ax)
    ax.set(xlabel="share of profiled time inside the function itself (standard agent)", ylabel="")


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
        FIGURES[name](df, fig)  # no title in the image: the caption is the report's (workflow/report/figure.rst)
    else:
        no_measured_cells(df, fig)
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
    ax.text(
        0.5,
        0.5,
        f"{df['study'].iloc[0]}: no measured cells\nall {len(df)} cells were skipped "
        f"(reasons: results/tables/{df['study'].iloc[0]}.md)",
        ha="center",
        va="center",
        fontsize=9,
    )


def _memory_vs_size(df, fig, column, ylabel):
    """``column`` against states, log-log, a colour per variant and a line style per density; ok cells only
    (a variant's line ends at the largest model it holds under the cap)."""
    ax = fig.add_subplot()
    ok = df[(df["status"] == "ok") & df[column].notna()].copy()
    ok["density"] = ok["p_density"].map("{:.2g}".format)
    ok["MiB"] = ok[column] / MIB
    if len(ok):
        sns.lineplot(
            data=ok,
            x="p_states",
            y="MiB",
            hue="variant",
            style="density",
            markers=True,
            hue_order=variant_order(ok),
            palette=palette(ok),
            ax=ax,
            errorbar=None,
        )
        _legend_outside(ax)
    ax.set(xscale="log", xlabel=LABELS["p_states"], ylabel=ylabel)
    _log_axis(ax, ok["MiB"])
    _count_ticks(ax, "p_states", ok["p_states"])


def model_bytes(df, fig):
    """Bytes of A and B as each variant holds them, against model size"""
    _memory_vs_size(df, fig, "model_bytes", "A and B as held (MiB)")


def traced_peak(df, fig):
    """tracemalloc peak during steps (Python and numpy allocations), against model size"""
    _memory_vs_size(df, fig, "tracemalloc_peak_bytes", "tracemalloc peak during steps (MiB)")


def rss_peak(df, fig):
    """Peak resident set size of the cell process during steps, against model size"""
    _memory_vs_size(df, fig, "rss_peak_bytes", "peak RSS during steps (MiB)")


def throughput(df, fig):
    """Agent steps per second against batch size, a colour per variant and a line style per batch mode"""
    ax = fig.add_subplot()
    ok = df[(df["status"] == "ok") & df["throughput_agent_steps_s"].notna()]
    if len(ok):
        sns.lineplot(
            data=ok,
            x="p_batch_size",
            y="throughput_agent_steps_s",
            hue="variant",
            style="p_batch_mode",
            markers=True,
            hue_order=variant_order(ok),
            palette=palette(ok),
            ax=ax,
            errorbar=None,
        )
        _legend_outside(ax)
    ax.set(xscale="log", xlabel="batch size (agents)", ylabel="throughput (agent steps / s)")
    _log_axis(ax, ok["throughput_agent_steps_s"])
    _count_ticks(ax, "p_batch_size", ok["p_batch_size"])


FIGURES.update({f.__name__: f for f in (model_bytes, traced_peak, rss_peak, throughput)})
