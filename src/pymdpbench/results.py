"""The one row schema, atomic Parquet writes, and the merge of cell files into study tables.

A cell file holds the rows of one (study, grid point, variant); its metadata holds the schema
version and the environment it ran in (``harness.environment()``).
"""

import json
import os
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA_VERSION = "1"

# column -> (type, unit, meaning). The only place the row layout is written down.
COLUMNS = {
    "study": (pa.string(), "", "study name: inference, planning, ..."),
    "cell": (pa.string(), "", "grid point id, e.g. s16-o8-a4-h1"),
    "variant": (pa.string(), "", "engine: standard, numba, sparse, float32, jax, or module:Class"),
    "model": (pa.string(), "", "model name: random, a GNN file, a pymdp environment"),
    "status": (pa.string(), "", "ok | skipped (reason says why)"),
    "reason": (
        pa.string(),
        "",
        "why a cell was skipped, or why an ok cell lacks a measurement (no gate reference, "
        "a batch mode its engine has no form of); empty otherwise",
    ),
    "p_states": (pa.int64(), "states", "hidden states per factor"),
    "p_obs": (pa.int64(), "outcomes", "outcomes per modality"),
    "p_actions": (pa.int64(), "actions", "actions per controllable factor"),
    "p_horizon": (pa.int64(), "steps", "policy length (sophisticated planning: search depth)"),
    "p_algorithm": (pa.string(), "", "planning study: vanilla | mmp | sophisticated"),
    "p_factors": (pa.int64(), "", "hidden-state factors"),
    "p_modalities": (pa.int64(), "", "observation modalities"),
    "p_density": (pa.float64(), "", "memory study: share of A and B entries drawn non-zero (each column keeps one)"),
    "p_batch_size": (pa.int64(), "agents", "batch study: agents stepped per batch of observations"),
    "p_batch_mode": (pa.string(), "", "batch study: sequential | multiprocessing | vectorised"),
    "seed": (pa.int64(), "", "cell seed, derived from the master seed and the grid point"),
    "n_policies": (pa.int64(), "", "number of policies evaluated"),
    "model_bytes": (pa.int64(), "B", "bytes of the model arrays as this engine holds them"),
    "setup_time_s": (pa.float64(), "s", "Agent construction"),
    "compile_time_s": (pa.float64(), "s", "first step minus a steady step: JIT compilation / cache load"),
    "samples_s": (pa.list_(pa.float64()), "s", "raw samples: seconds per step, each averaged over inner_loops steps"),
    "inner_loops": (pa.int64(), "", "steps per sample (calibrated so a sample lasts >= min_sample_s)"),
    "step_time_s": (pa.float64(), "s", "median of samples_s"),
    "step_time_iqr_s": (pa.float64(), "s", "interquartile range of samples_s"),
    "ci_low_s": (pa.float64(), "s", "bootstrap 95% CI of the median, low"),
    "ci_high_s": (pa.float64(), "s", "bootstrap 95% CI of the median, high"),
    "stable": (pa.bool_(), "", "IQR <= unstable_iqr_ratio * median"),
    "processes": (
        pa.int64(),
        "processes",
        "fresh processes the cell was timed in, one after another (timing.processes); "
        "samples_s holds all their samples and the CI resamples whole processes",
    ),
    "sample_process": (pa.list_(pa.int64()), "", "process (0 = the cell's own) that took each entry of samples_s"),
    "within_process_var_s2": (pa.float64(), "s^2", "mean over processes of the variance of their samples_s"),
    "between_process_var_s2": (
        pa.float64(),
        "s^2",
        "variance of the process means beyond within-process noise "
        "(one-way random effects, floored at 0); null with one process",
    ),
    "between_process_share": (
        pa.float64(),
        "",
        "between / (within + between process variance): the share of "
        "timing noise that one process alone cannot see; null with one process",
    ),
    "host": (pa.string(), "", "host name of the machine that measured the row"),
    "tracemalloc_peak_bytes": (pa.int64(), "B", "peak Python/numpy allocation during steps"),
    "rss_peak_bytes": (pa.int64(), "B", "peak resident set size of the process during steps"),
    "q_pi_entropy": (pa.float64(), "nats", "entropy of q_pi at the last gate step"),
    "throughput_agent_steps_s": (
        pa.float64(),
        "agent-steps/s",
        "batch study: agent steps per second over a stream of "
        "observation batches (median of its samples); null when the mode has no form for the engine",
    ),
    "batch_workers": (
        pa.int64(),
        "processes",
        "batch study: distinct processes that stepped agents (pool workers, or 1)",
    ),
    "throughput_ci_low": (pa.float64(), "agent-steps/s", "batch study: bootstrap 95% CI of the median throughput, low"),
    "throughput_ci_high": (
        pa.float64(),
        "agent-steps/s",
        "batch study: bootstrap 95% CI of the median throughput, high",
    ),
    "memory_per_agent_bytes": (
        pa.float64(),
        "B",
        "batch study: bytes held per agent (a batched form's arrays held per "
        "agent; sequential: numpy allocation traced while the B agents are built), divided by B",
    ),
    "beliefs_parameters_bytes": (
        pa.float64(),
        "B",
        "batch study: the least an agent holds: qs, q_pi and its own parameters",
    ),
    "batch_dev": (
        pa.float64(),
        "",
        "batch study, vectorised: max |qs|, |q_pi| difference of any agent of the batch from "
        "the single-agent engine stepped on the same observations and draws",
    ),
    "batch_n_action_diff": (
        pa.int64(),
        "agent-steps",
        "batch study, vectorised: agent-steps whose action differs from the single-agent engine's",
    ),
    "batch_agents_checked": (
        pa.int64(),
        "agents",
        "batch study, vectorised: agents compared with the single-agent engine (all of the batch)",
    ),
    "p_lr": (pa.float64(), "", "learning study: lr_pA = lr_pB"),
    "p_param_info_gain": (pa.bool_(), "", "learning study: parameter information gain (pA, pB novelty) in the EFE"),
    "p_episodes": (pa.int64(), "episodes", "learning study: episodes each learner plays"),
    "p_episode_steps": (pa.int64(), "steps", "learning study: actions per episode"),
    "learning_runs": (pa.int64(), "", "learning study: independent learners per cell, each seeded from the cell seed"),
    "episode_goal_rate": (
        pa.list_(pa.float64()),
        "",
        "learning study: per episode, share of runs whose reward was positive",
    ),
    "episode_reward": (
        pa.list_(pa.float64()),
        "outcomes",
        "learning study: per episode, reward outcomes minus loss outcomes, mean over runs",
    ),
    "episode_step_time_s": (
        pa.list_(pa.float64()),
        "s",
        "learning study: per episode, mean seconds per learning step (mean over runs)",
    ),
    "episodes_to_converge": (
        pa.int64(),
        "episodes",
        "learning study: first episode from which the 5-episode rolling goal rate stays within 0.1 of its final value",
    ),
    "final_goal_rate": (pa.float64(), "", "learning study: mean goal rate of the last 5 episodes"),
    "profile_steps": (pa.int64(), "steps", "profile study: steps run under cProfile"),
    "profile_total_s": (
        pa.float64(),
        "s",
        "profile study: profiled seconds over all functions (own times summed, profiler overhead included)",
    ),
    "profile_function": (
        pa.list_(pa.string()),
        "",
        "profile study: top functions by own and by cumulative time, as file:line(name), by own time",
    ),
    "profile_calls": (
        pa.list_(pa.int64()),
        "calls",
        "profile study: calls of each profile_function over profile_steps",
    ),
    "profile_own_s": (
        pa.list_(pa.float64()),
        "s",
        "profile study: time inside each function itself over profile_steps",
    ),
    "profile_cumulative_s": (
        pa.list_(pa.float64()),
        "s",
        "profile study: time in each function and what it calls over profile_steps",
    ),
    "profile_pstats": (pa.binary(), "", "profile study: the whole profile, marshalled as pstats dump_stats writes it"),
    "memory_line": (
        pa.list_(pa.string()),
        "",
        "profile study: lines of the step's hottest functions that keep the most Python/numpy memory, as file:line (memory-profiler, tracemalloc backend; docs/memory-profile.md)",
    ),
    "memory_line_increment_bytes": (
        pa.list_(pa.int64()),
        "B",
        "profile study: memory-profiler's increment of each memory_line in one step: memory in use after the line minus before it, summed over its runs",
    ),
    "memory_line_runs": (pa.list_(pa.int64()), "runs", "profile study: times each memory_line ran in that step"),
    "dev_qs": (pa.float64(), "", "max |qs - qs_standard| over the gate trajectory"),
    "dev_q_pi": (pa.float64(), "", "max |q_pi - q_pi_standard|"),
    "dev_G": (pa.float64(), "", "max |G - G_standard|"),
    "dev_G_rel": (pa.float64(), "", "max |G - G_standard| / max(1, |G_standard|)"),
    "n_action_diff": (pa.int64(), "steps", "gate steps where the chosen action differs"),
    "tolerance": (pa.float64(), "", "gate tolerance of this engine"),
    "gate_pass": (pa.bool_(), "", "all deviations within tolerance and no differing action"),
    "threads": (pa.int64(), "", "threads the rule declared (BLAS, OpenMP, numba, XLA)"),
    "blas_threads": (pa.string(), "", "threads each loaded BLAS/OpenMP pool really uses (threadpoolctl)"),
    "load_avg_1m": (pa.float64(), "", "machine 1-minute load average at the end of timing"),
    "rolling_mean_s": (pa.list_(pa.float64()), "s", "live monitor: rolling mean of step time"),
    "rolling_std_s": (pa.list_(pa.float64()), "s", "live monitor: rolling std of step time"),
    "rss_trace_bytes": (pa.list_(pa.int64()), "B", "live monitor: RSS after each sample"),
}

#: columns that are measurements of time, memory or the machine: they differ between runs.
#: Every other column is a function of the config alone, so reruns must reproduce it exactly.
MEASURED = {
    "setup_time_s",
    "compile_time_s",
    "samples_s",
    "inner_loops",
    "step_time_s",
    "step_time_iqr_s",
    "ci_low_s",
    "ci_high_s",
    "stable",
    "sample_process",
    "within_process_var_s2",
    "between_process_var_s2",
    "between_process_share",
    "host",
    "tracemalloc_peak_bytes",
    "rss_peak_bytes",
    "blas_threads",
    "load_avg_1m",
    "rolling_mean_s",
    "rolling_std_s",
    "rss_trace_bytes",
    "throughput_agent_steps_s",
    "throughput_ci_low",
    "throughput_ci_high",
    "memory_per_agent_bytes",
    "episode_step_time_s",
    "profile_total_s",
    "profile_function",
    "profile_calls",
    "profile_own_s",
    "profile_cumulative_s",
    "profile_pstats",
    "memory_line",
    "memory_line_increment_bytes",
    "memory_line_runs",
}

# Each field carries its unit and meaning, so a Parquet file read alone says what its numbers are
# (`pq.read_schema(path).field("step_time_s").metadata`; docs/columns.md lists them all).
SCHEMA = pa.schema(
    [
        pa.field(name, typ, metadata={"unit": unit, "description": meaning})
        for name, (typ, unit, meaning) in COLUMNS.items()
    ]
)


class ResultError(ValueError):
    """A cell file that is not one of ours: unreadable, truncated, or of another schema."""


def write_table(table, path, metadata=None):
    """Write ``table`` to ``path`` atomically: a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if table.schema.equals(SCHEMA):  # a row table, maybe merged from older files: units and meanings
        table = table.cast(SCHEMA)
    meta = {b"pymdpbench_schema_version": SCHEMA_VERSION.encode()}
    for key, value in (metadata or {}).items():
        meta[key.encode()] = json.dumps(value, default=str).encode()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def rows_to_table(rows):
    """Rows (dicts) to a table of exactly SCHEMA; a column missing from a row is null."""
    unknown = {key for row in rows for key in row} - set(COLUMNS)
    if unknown:
        raise KeyError(f"row has columns not in the schema: {sorted(unknown)}")
    return pa.Table.from_pylist([{name: row.get(name) for name in COLUMNS} for row in rows], schema=SCHEMA)


def write_rows(rows, path, environment):
    write_table(rows_to_table(rows), path, {"environment": environment})


def read_cell(path):
    """Read and validate one cell file; a corrupt, truncated or foreign file raises ResultError naming it."""
    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for damaged files
        raise ResultError(f"{path}: not a readable Parquet file ({err})") from err
    version = (table.schema.metadata or {}).get(b"pymdpbench_schema_version")
    if version != SCHEMA_VERSION.encode():
        raise ResultError(f"{path}: schema version {version!r}, expected {SCHEMA_VERSION!r}")
    if not table.schema.remove_metadata().equals(SCHEMA):
        raise ResultError(f"{path}: columns differ from the row schema ({schema_difference(table.schema)})")
    return table


def schema_difference(schema):
    """What differs between ``schema`` and the row schema: missing, extra and mistyped columns, or order."""
    found = {field.name: field.type for field in schema}
    parts = []
    missing = [name for name in SCHEMA.names if name not in found]
    extra = [name for name in found if name not in COLUMNS]
    mistyped = [
        f"{name} is {found[name]}, expected {SCHEMA.field(name).type}"
        for name in SCHEMA.names
        if name in found and found[name] != SCHEMA.field(name).type
    ]
    if missing:
        parts.append(f"missing: {', '.join(missing)}")
    if extra:
        parts.append(f"extra: {', '.join(extra)}")
    if mistyped:
        parts.append(f"mistyped: {'; '.join(mistyped)}")
    return "; ".join(parts) or "same columns in another order"


def cell_identity(path):
    """(study, cell, variant) a cell file's path names, for a file in the pipeline's layout
    ``.../cells/<study>/<cell>/<variant>.parquet``; None for a file elsewhere."""
    path = Path(path)
    if len(path.parts) >= 4 and path.parts[-4] == "cells":
        return path.parts[-3], path.parts[-2], path.stem
    return None


def check_cell(table, path, rows_per_cell=1, study=None):
    """Refuse a cell file whose contents are not its cell's: not ``rows_per_cell`` rows (its study
    declares how many), rows of another study than ``study``, or rows whose study, cell and variant
    differ from the ones its path names (a file copied over another cell's)."""
    if table.num_rows != rows_per_cell:
        raise ResultError(f"{path}: holds {table.num_rows} rows, its study writes {rows_per_cell} per cell")
    keys = list(zip(*(table.column(c).to_pylist() for c in ("study", "cell", "variant"))))
    expected = cell_identity(path)
    for key in keys:
        if study is not None and key[0] != study:
            raise ResultError(f"{path}: a row of study {key[0]!r} in the {study!r} table (a foreign file)")
        if expected is not None and key != expected:
            raise ResultError(
                f"{path}: holds the row of {'/'.join(map(str, key))}, but its path is that of "
                f"{'/'.join(expected)} (a file copied from another cell?)"
            )
    return keys


def non_timing_content(df):
    """The columns a rerun must reproduce exactly, sorted by cell and variant: what resume,
    cluster and reproducibility checks compare."""
    columns = [c for c in COLUMNS if c not in MEASURED and c in df.columns]
    return df[columns].sort_values(["study", "cell", "variant"]).reset_index(drop=True)


def environment_of(path):
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta.get(b"environment", b"{}"))


def merge(paths, out_path, skip_bad=False, rows_per_cell=1, study=None):
    """Concatenate validated cell files into one study table (atomically); returns it as pandas.

    Each file must be readable, of the row schema and hold its own cell's rows (:func:`check_cell`);
    no (study, cell, variant) may come from two files. A bad file stops the merge with an error
    naming it; with ``skip_bad`` it is left out with a warning, and its name and the reason are
    kept in the table's metadata (``skipped_files``) so the tables and the report say so.
    """
    tables, skipped, owners = [], {}, {}
    paths = sorted(map(str, paths))
    if len(set(paths)) != len(paths):
        raise ResultError(
            f"{out_path}: a cell file is listed twice: {sorted({p for p in paths if paths.count(p) > 1})}"
        )
    for path in paths:
        try:
            table = read_cell(path)
            for key in check_cell(table, path, rows_per_cell, study):
                if key in owners:
                    raise ResultError(
                        f"{path}: holds the row of {'/'.join(map(str, key))}, as {owners[key]} does (a duplicate)"
                    )
                owners[key] = path
            tables.append(table)
        except ResultError as err:
            if not skip_bad:
                raise
            warnings.warn(f"left out of the merge: {err}", stacklevel=2)
            skipped[path] = str(err)
    if not tables:
        raise ResultError(f"{out_path}: no valid cell files to merge")
    merged = pa.concat_tables([t.replace_schema_metadata(None) for t in tables])
    good = next(p for p in paths if p not in skipped)
    write_table(merged, out_path, {"environment": environment_of(good), "skipped_files": skipped})
    return merged.to_pandas()


def threads_used(paths):
    """{study: {"threads": [...], "blas_threads": [...]}}: the distinct thread counts the cells of
    each merged table declared and the BLAS/OpenMP pool sizes they really ran with."""
    used = {}
    for path in paths:
        table = pq.read_table(path, columns=["study", "threads", "blas_threads"])
        for study in set(table.column("study").to_pylist()):
            rows = [r for r in table.to_pylist() if r["study"] == study]
            used[study] = {
                key: sorted({r[key] for r in rows if r[key] is not None}) for key in ("threads", "blas_threads")
            }
    return used


def skipped_files(path):
    """Cell files a merge left out (``skip_bad``), as {path: reason}."""
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta.get(b"skipped_files", b"{}"))


def write_text(path, text):
    """Write a text file atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
