"""Checks made while Snakemake builds the DAG, before any job runs: what the config schema cannot
say (duplicate YAML keys, integers written as floats, custom engines that are not engines), the
grid's cell ids and size, and what earlier runs left behind (corrupt reference files, temporary
files of killed writes).

Each check raises :class:`ConfigError` with a message naming the key, the file or the grid
points, and what to do. ``workflow/rules/common.smk`` calls them in that order.
"""

import math
import os
import re
import sys
import time
from importlib import import_module
from pathlib import Path

import yaml


class ConfigError(ValueError):
    """A configuration the benchmark refuses before any job; the message names the key."""


# --- the config files ------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key written twice in one mapping (PyYAML keeps the last)."""


def _mapping_without_duplicates(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(
                f"{node.start_mark.name}: key {key!r} is written twice (lines {seen[key] + 1} and "
                f"{key_node.start_mark.line + 1}); YAML would keep only the last one"
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def refuse_duplicate_keys(paths):
    """Re-read each config file strictly: Snakemake's own loader silently keeps the last of two equal keys."""
    for path in paths:
        with open(path, encoding="utf-8") as f:
            yaml.load(f, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)


def _location(path):
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def refuse_inexact_integers(config, schema_path):
    """Refuse a float where the schema wants an integer. JSON Schema counts 4.0 as an integer, but
    numpy and pymdp do not take 4.0 as a size, so the benchmark asks for 4."""
    import jsonschema

    with open(schema_path, encoding="utf-8") as f:
        schema = yaml.safe_load(f)
    base = jsonschema.validators.validator_for(schema)
    strict = base.TYPE_CHECKER.redefine("integer", lambda _, x: isinstance(x, int) and not isinstance(x, bool))
    validator = jsonschema.validators.extend(base, type_checker=strict)(schema)
    for error in validator.iter_errors(config):
        if error.validator == "type" and isinstance(error.instance, float):
            value = error.instance
            hint = f" (write {int(value)})" if value.is_integer() else ""
            raise ConfigError(f"config key '{_location(error.absolute_path)}': {value!r} is not an integer{hint}")


# --- custom engines --------------------------------------------------------------------------

#: what a cell asks of an engine class: pymdp's legacy Agent interface, and ``supports``
ENGINE_METHODS = ("supports", "infer_states", "infer_policies", "sample_action")


def check_custom_variants(custom_variants):
    """Import each ``custom_variants`` path now, so that a missing module or a path to something
    other than an engine class stops the run before any cell."""
    for name, path in custom_variants.items():
        module_name, class_name = path.split(":")
        where = f"config key 'custom_variants.{name}': {path!r}"
        try:
            module = import_module(module_name)
        except Exception as err:  # an engine module may fail to import in any way
            raise ConfigError(f"{where}: cannot import module {module_name!r} ({type(err).__name__}: {err})") from err
        engine = getattr(module, class_name, None)
        if engine is None:
            raise ConfigError(f"{where}: module {module_name!r} has no {class_name!r}")
        if not isinstance(engine, type):
            raise ConfigError(f"{where}: is a {type(engine).__name__}, not an engine class")
        missing = [m for m in ENGINE_METHODS if not callable(getattr(engine, m, None))]
        if missing:
            raise ConfigError(
                f"{where}: not an engine class: it lacks {', '.join(missing)} "
                "(an engine has pymdp's legacy Agent methods and supports(options))"
            )


# --- the grid --------------------------------------------------------------------------------


def index_points(study_name, points):
    """{cell id: point} of one study; two distinct points with one id are refused naming both (an
    id names its cell's files and seeds its models: one would silently replace the other)."""
    by_id = {}
    for point in points:
        other = by_id.setdefault(point["cell"], point)
        if other is not point:
            same = "the same point is listed twice" if other == point else "two grid points share it"
            raise ConfigError(
                f"studies.{study_name}: cell id {point['cell']!r}: {same}: {_describe(other)} and {_describe(point)}"
            )
    return by_id


def _describe(point):
    return "{" + ", ".join(f"{k}: {v!r}" for k, v in point.items() if k != "cell") + "}"


def policy_count(options):
    """Policies pymdp's legacy agent enumerates: every combination of controls at every step."""
    return math.prod(options["num_controls"]) ** options["policy_len"]


#: seconds pymdp's legacy agent spends per policy and planned step, beyond the model's size, and
#: per model entry on top (measured with pymdp 1.0.4 on a 2-core workstation: 4096 policies of
#: length 6 on 8 states take 4.9 s a step; 64 policies of length 3 on 64 states, 0.25 s)
SECONDS_PER_POLICY_STEP = 2e-4
SECONDS_PER_POLICY_STEP_ENTRY = 6e-8


def estimated_step_s(policies, horizon, entries):
    """A rough time per step of the reference agent (it runs at every grid point)."""
    return policies * horizon * (SECONDS_PER_POLICY_STEP + SECONDS_PER_POLICY_STEP_ENTRY * entries)


def reference_runs(study, point, memory_cap_bytes):
    """Whether the standard agent runs at ``point`` (not skipped by the study or the memory cap)."""
    from pymdpbench.resources import estimated_bytes

    return study.supports(point, "standard")[0] and estimated_bytes(study, point, "standard") <= memory_cap_bytes


def check_policies(study_name, study, points, max_policies, max_step_time_s, memory_cap_bytes):
    """Refuse points whose policy tree is over budget, naming the point, the count and the estimate
    (the time of the reference agent, where it runs: other engines are faster)."""
    for point in points:
        horizon = point.get("horizon", 1)
        policies = study.policy_count(point)
        step_s = 0.0
        if reference_runs(study, point, memory_cap_bytes):
            step_s = estimated_step_s(policies, horizon, study.model_entries(point)[0])
        if policies > max_policies or step_s > max_step_time_s:
            raise ConfigError(
                f"studies.{study_name}: cell {point['cell']}: {policies:,} policies of length {horizon}, "
                f"~{step_s:.3g} s per step of the reference agent; budget: max_policies {max_policies:,}, "
                f"max_step_time_s {max_step_time_s:g} (raise them in the config, or lower the horizon or actions)"
            )


def grid(config, variants, get_study, stream=None):
    """{study: {cell id: point}} of the config, checked before the DAG is built: unique cell ids, no
    study left empty, the number of cells within ``max_cells`` (the count is printed), policies
    within budget."""
    points, total = {}, 0
    for name, settings in config["studies"].items():
        study = get_study(name)
        listed = study.points(settings)
        if not listed:
            raise ConfigError(f"studies.{name}: no grid point left: {study.empty_reason(settings)}")
        points[name] = index_points(name, listed)
        total += len(listed) * len(variants)
        if total > config["max_cells"]:
            raise ConfigError(
                f"the grid has more than {config['max_cells']:,} cells (at least {total:,} so far, "
                f"at {name}: {len(listed):,} points x {len(variants)} variants); "
                "raise max_cells or shrink the grid"
            )
    for name, by_id in points.items():
        check_policies(
            name,
            get_study(name),
            by_id.values(),
            config["max_policies"],
            config["max_step_time_s"],
            config["memory_cap_mb"] * 2**20,
        )
    counts = ", ".join(f"{name} {len(by_id)}" for name, by_id in points.items())
    print(
        f"pymdp-bench: {total:,} cells ({counts} points x {len(variants)} variants; max_cells {config['max_cells']:,})",
        file=stream or sys.stderr,
    )
    return points


# --- what earlier runs left ------------------------------------------------------------------


def corrupt_references(points, root="results"):
    """{path: what is wrong} of the existing reference files of ``points`` that would not load."""
    from pymdpbench.gate import TrajectoryError, check_reference_file

    bad = {}
    for study, by_id in points.items():
        for cell in by_id:
            path = Path(root, "cells", study, cell, "reference.npz")
            if path.exists():
                try:
                    check_reference_file(path, study, cell)
                except TrajectoryError as err:
                    bad[str(path)] = str(err)
    return bad


def remove_corrupt_references(points, root="results", dry_run=False, stream=None):
    """Delete reference files that would not load, so that Snakemake sees the reference rule's output
    missing and runs it again (and, after it, the variants of that point) instead of handing a bad
    reference to every variant. A dry run only says what it would delete."""
    from pymdpbench.gate import REFERENCE_ADVICE

    bad = corrupt_references(points, root)
    for path, reason in bad.items():
        reason = reason.removesuffix(f"; {REFERENCE_ADVICE}")
        if dry_run:
            print(f"pymdp-bench: would remove {reason}", file=stream or sys.stderr)
        else:
            os.remove(path)
            print(f"pymdp-bench: removed {reason}; its grid point runs again", file=stream or sys.stderr)
    return bad


#: temporary names of the atomic writes (results.write_table and write_text, gate, figures, pstats)
TEMPORARY = re.compile(r"(?:^|\.)tmp\.(\d+)(?:\.|$)")
#: a temporary file untouched this long whose process is gone is left from a killed write
LEFTOVER_AGE_S = 60


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(root="results", stream=None, now=None):
    """Remove temporary files of killed writes under ``root``: named as our atomic writes name them,
    their writer process gone, and unmodified for ``LEFTOVER_AGE_S`` (a writer on another cluster node
    is not a process here, so age alone must say the write is over). Returns the removed paths."""
    now = time.time() if now is None else now
    removed = []
    if not os.path.isdir(root):
        return removed
    for folder, _, files in os.walk(root):
        for name in files:
            match = TEMPORARY.search(name)
            path = os.path.join(folder, name)
            if match and not _alive(int(match.group(1))):
                try:
                    if now - os.path.getmtime(path) >= LEFTOVER_AGE_S:
                        os.remove(path)
                        removed.append(path)
                except FileNotFoundError:
                    pass
    if removed:
        print(
            f"pymdp-bench: removed {len(removed)} temporary file(s) of interrupted writes: "
            f"{', '.join(removed[:5])}{' ...' if len(removed) > 5 else ''}",
            file=stream or sys.stderr,
        )
    return removed
