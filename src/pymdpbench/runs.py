"""The run archive: every successful run kept under ``results/runs/<run_id>/``, and found again.

An archived run holds what a reader or ``pymdpbench compare`` needs: the manifest, the merged
study tables (``<study>.parquet``, every row with its raw samples), the markdown and LaTeX tables,
the figures, the headline numbers and Snakemake's per-job benchmark files. Cell files are not
kept: the merged tables hold all their rows. Files are hard-linked where the file system allows
(every output of the workflow is written by a rename, so a later run replaces the live file and
never changes an archived one), copied otherwise.
"""

import json
import os
import shutil
from pathlib import Path

#: what a run archive holds, relative to the results folder (globs)
ARCHIVED = ("manifest.json", "*.parquet", "tables/*", "figures/*/*", "paper/*", "benchmarks/**/*.tsv")


class RunError(ValueError):
    """A run that cannot be found or read: the message names it and what is there."""


def _link_or_copy(src, dest):
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def archive(results_dir, run_id):
    """Archive the run in ``results_dir`` as ``results_dir/runs/<run_id>/``; returns that folder.

    Built in a hidden temporary folder and renamed into place, so a run folder is always whole.
    """
    results_dir = Path(results_dir)
    dest = results_dir / "runs" / run_id
    tmp = results_dir / "runs" / f".{run_id}.tmp.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for pattern in ARCHIVED:
        for src in sorted(results_dir.glob(pattern)):
            if src.is_file() and not src.name.startswith("."):
                _link_or_copy(src, tmp / src.relative_to(results_dir))
    if not (tmp / "manifest.json").is_file():
        shutil.rmtree(tmp, ignore_errors=True)
        raise RunError(f"{results_dir}: no manifest.json to archive")
    os.replace(tmp, dest)
    return dest


def manifest(run_dir):
    path = Path(run_dir) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise RunError(f"{path}: not a readable run manifest ({err})") from err


def list_runs(results_dir="results"):
    """Archived runs, oldest first: one dict per run with its id, times, commit, host, configs and
    the studies it holds."""
    found = []
    for run_dir in sorted((Path(results_dir) / "runs").glob("*/manifest.json")):
        m = manifest(run_dir.parent)
        env = m.get("environment", {})
        found.append(
            {
                "run_id": m["run_id"],
                "path": str(run_dir.parent),
                "started": m.get("started"),
                "ended": m.get("ended"),
                "git_commit": env.get("git_commit"),
                "git_dirty": env.get("git_dirty"),
                "host": env.get("host"),
                "config_files": m.get("config_files", []),
                "studies": sorted(p.stem for p in run_dir.parent.glob("*.parquet")),
            }
        )
    return sorted(found, key=lambda run: (run["started"] or "", run["run_id"]))


def resolve(spec, results_dir="results"):
    """The folder of a run named by ``spec``: a folder holding a manifest (an archived run or a
    results folder), an archived run id, a unique prefix of one, or ``latest`` / ``latest~N``."""
    path = Path(spec)
    if (path / "manifest.json").is_file():
        return path
    runs = list_runs(results_dir)
    if spec == "latest" or spec.startswith("latest~"):
        back = int(spec.split("~", 1)[1]) if "~" in spec else 0
        if back >= len(runs):
            raise RunError(f"run {spec!r}: only {len(runs)} archived run(s) in {Path(results_dir) / 'runs'}")
        return Path(runs[-1 - back]["path"])
    matches = [run for run in runs if run["run_id"].startswith(spec)]
    if len(matches) == 1:
        return Path(matches[0]["path"])
    known = ", ".join(run["run_id"] for run in runs[-5:]) or "none"
    what = "ambiguous" if matches else "not found"
    raise RunError(f"run {spec!r} {what}: give a run folder or an id in {Path(results_dir) / 'runs'} (latest: {known})")


def load_rows(run_dir):
    """All rows of a run's merged study tables, as one pandas frame.

    Read as they are, not against today's row schema: a run archived by an older commit (fewer or
    other columns) must stay comparable. Columns a comparison needs and the file lacks are null.
    """
    import pandas as pd

    paths = sorted(Path(run_dir).glob("*.parquet"))
    if not paths:
        raise RunError(f"{run_dir}: no merged study tables (<study>.parquet)")
    frames = []
    for path in paths:
        try:
            frames.append(pd.read_parquet(path))
        except Exception as err:  # pyarrow raises several types for damaged files
            raise RunError(f"{path}: not a readable Parquet file ({err})") from err
    rows = pd.concat(frames, ignore_index=True)
    for column in ("study", "cell", "variant", "status", "samples_s", "sample_process", "gate_pass", "load_avg_1m"):
        if column not in rows:
            rows[column] = None
    return rows
