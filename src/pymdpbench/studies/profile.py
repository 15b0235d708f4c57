"""Profile: where a step's time goes, function by function (cProfile), at several model sizes.

Each cell is a random one-factor model (states x observations x actions, policy length
``horizon``; named models too). After the common timing, :meth:`Profile.measure` runs ``steps``
more steps of the same agent (infer_states, infer_policies, sample_action) under ``cProfile`` and
keeps, in the row, the ``top`` functions by own time and the ``top`` by cumulative time (their
union, by own time): name, calls, own and cumulative seconds. The whole profile travels with
the row as a pstats blob; the pipeline unpacks it beside the cell's Parquet
(``results/cells/profile/<cell>/<variant>.pstats``, readable with ``python -m pstats``).

Every variant is profiled, not only the standard one. The standard row names pymdp's own hot
spots (``spm_MDP_G``, ``spm_cross``, numpy's ``expand_dims`` ...), which is what a speed-up has to
remove; the other rows show where each engine's remaining time goes — a numba step that is one
kernel call and a little Python, a sparse step dominated by scipy's dispatch — which is the next
thing to optimise. cProfile adds a fixed cost per Python call, so its seconds overstate the
many-small-calls code of pymdp; compare shares within a row, and use ``step_time_s`` (measured
without the profiler) for speed.
"""

import cProfile
import marshal
import os
import pstats

import numpy as np
import pandas as pd

from pymdpbench import gate, memlines
from pymdpbench.engines import traits
from pymdpbench.studies.base import SizeGrid


def function_name(key):
    """A readable name for a pstats key (file, line, function): ``pymdp/legacy/maths.py:517(spm_MDP_G)``,
    or the built-in's own description (``<method 'dot' of 'numpy.ndarray' objects>``)."""
    filename, line, function = key
    if filename == "~":
        return function
    for marker in ("site-packages/", "/src/"):
        if marker in filename:
            filename = filename.rsplit(marker, 1)[1]
            break
    else:
        filename = os.path.basename(filename)
    return f"{filename}:{line}({function})"


def top_functions(stats, top):
    """The ``top`` functions by own time and the ``top`` by cumulative time, as the row's list
    columns, ordered by own time. ``stats`` is ``pstats.Stats(...).stats``; the profiler's own
    ``disable`` call is left out."""
    entries = {key: value for key, value in stats.items() if "_lsprof.Profiler" not in key[2]}
    by_own = sorted(entries, key=lambda k: entries[k][2], reverse=True)[:top]
    by_cumulative = sorted(entries, key=lambda k: entries[k][3], reverse=True)[:top]
    keys = sorted(set(by_own) | set(by_cumulative), key=lambda k: (-entries[k][2], function_name(k)))
    return {
        "profile_function": [function_name(k) for k in keys],
        "profile_calls": [int(entries[k][1]) for k in keys],
        "profile_own_s": [float(entries[k][2]) for k in keys],
        "profile_cumulative_s": [float(entries[k][3]) for k in keys],
        "profile_total_s": float(sum(value[2] for value in entries.values())),
    }


def profile_functions(df):
    """The profiled functions of a merged table, one row per (cell, variant, function): calls and
    seconds per step, and the share of the profiled time spent in the function itself (own) and in
    it and what it calls (cumulative)."""
    columns = [
        "cell",
        "variant",
        "p_states",
        "p_obs",
        "p_actions",
        "p_horizon",
        "function",
        "calls_per_step",
        "own_s_per_step",
        "cumulative_s_per_step",
        "own_share",
        "cumulative_share",
    ]
    rows = []
    for _, r in df[df["status"] == "ok"].iterrows():
        steps, total = r["profile_steps"], r["profile_total_s"]
        for name, calls, own, cumulative in zip(
            r["profile_function"], r["profile_calls"], r["profile_own_s"], r["profile_cumulative_s"]
        ):
            rows.append(
                [
                    r["cell"],
                    r["variant"],
                    r["p_states"],
                    r["p_obs"],
                    r["p_actions"],
                    r["p_horizon"],
                    name,
                    calls / steps,
                    own / steps,
                    cumulative / steps,
                    own / total,
                    cumulative / total,
                ]
            )
    return pd.DataFrame(rows, columns=columns)


def write_pstats(cell_path, out_path):
    """Unpack the pstats blob of a profile cell file into ``out_path`` (``pstats.Stats(out_path)``
    reads it). A skipped cell has no profile: its file holds an empty statistics table."""
    from pymdpbench.results import read_cell

    blob = read_cell(cell_path).column("profile_pstats")[0].as_py()
    tmp = f"{out_path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(blob if blob is not None else marshal.dumps({}))
    os.replace(tmp, out_path)


#: hottest functions (cumulative time) whose lines memory-profiler reads, one step each
MEMORY_FUNCTIONS = 3


class Profile(SizeGrid):
    name = "profile"
    figures = ["profile_top", "speedup", "deviation"]

    def supports(self, point, variant):
        """JAX is left out: cProfile sees one opaque call into compiled XLA code, which says nothing
        about where its time goes (use JAX's own profiler for that)."""
        if not traits(variant).profilable:
            return False, "cProfile cannot see inside this engine's compiled code"
        return True, ""

    def points(self, settings):
        """States x the fixed observations, actions and horizon, plus each named model; every point
        carries the profiled ``steps`` and the ``top`` functions to keep."""
        h = settings["horizon"]
        points = [self.point(s, settings["observations"], settings["actions"], h) for s in settings["states"]]
        points += self.named_points(settings, [h])
        return [{**p, "profile_steps": settings["steps"], "top": settings["top"]} for p in points]

    def row_parameters(self, point):
        return {**super().row_parameters(point), "profile_steps": point["profile_steps"]}

    def measure(self, Agent, kwargs, point, seed, timing):
        """A fresh agent (one warm-up step), then ``profile_steps`` steps under cProfile."""
        agent = Agent(**kwargs)
        num_obs = [a.shape[0] for a in agent.A]
        observations = [
            [int(o) for o in obs] for obs in gate.observation_sequence(seed, num_obs, point["profile_steps"] + 1)
        ]
        np.random.seed(seed % 2**32)
        self.step(agent, observations[0])
        profiler = cProfile.Profile()
        profiler.enable()
        for obs in observations[1:]:
            self.step(agent, obs)
        profiler.disable()
        stats = pstats.Stats(profiler).stats
        # Then one more step per hot function, its lines' memory (memory-profiler; docs/memory-profile.md).
        hot = memlines.hot_functions(agent, stats, MEMORY_FUNCTIONS)
        memory = memlines.line_memory(agent, lambda a: self.step(a, observations[-1]), hot)
        return {**top_functions(stats, point["top"]), "profile_pstats": marshal.dumps(stats), **memory}
