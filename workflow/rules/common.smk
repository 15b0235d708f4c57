# The grid: config -> studies -> points -> cell files. Named functions only; rules stay declarative.
import os
import sys
import time

import pymdpbench.resources
from pymdpbench import checks
from pymdpbench.engines import ENGINES
from pymdpbench.studies import get_study

# What the schema cannot say, checked before any job (pymdpbench.checks; docs/bad-inputs.md).
checks.refuse_duplicate_keys(workflow.overwrite_configfiles or ["config/config.yaml"])
checks.refuse_inexact_integers(config, "workflow/schemas/config.schema.yaml")
ENGINE_PATHS = {**ENGINES, **config.get("custom_variants", {})}
UNKNOWN_VARIANTS = sorted(set(config["variants"]) - set(ENGINE_PATHS))
if UNKNOWN_VARIANTS:
    raise ValueError(
        f"config key 'variants': unknown {UNKNOWN_VARIANTS}; known: {sorted(ENGINE_PATHS)} "
        "(add your own under 'custom_variants')"
    )
checks.check_custom_variants(config.get("custom_variants", {}))
# The reference runs in every grid point, whether or not it is listed.
VARIANTS = ["standard"] + [v for v in config["variants"] if v != "standard"]
# study -> cell id -> point: ids unique, cell count and policies within budget, no study empty.
POINTS = checks.grid(config, VARIANTS, get_study)
if workflow.is_main_process:
    # a reference that would not load is removed, so its point runs again rather than failing every variant
    checks.remove_corrupt_references(POINTS, dry_run=workflow.dryrun)
    checks.clean_leftovers("results")
RUN_STARTED = time.time()
COMMAND_LINE = " ".join(sys.argv)


wildcard_constraints:
    study="|".join(POINTS) or "none",
    cell=r"[A-Za-z0-9_.-]+",
    variant=r"[A-Za-z][A-Za-z0-9_]*",
    figure=r"[a-z_]+",


def point_of(wildcards):
    return POINTS[wildcards.study][wildcards.cell]


def cell_threads(wildcards):
    """The config's threads, unless the point declares its own (a process pool's size)."""
    return point_of(wildcards).get("threads", config["threads"])


def model_files(wildcards):
    """A named model's GNN file, so that editing it reruns its cells."""
    model = point_of(wildcards).get("model", "")
    return [model] if model.endswith(".md") else []


def engine_path(wildcards):
    return ENGINE_PATHS[wildcards.variant]


def study_cell_files(study):
    return [f"results/cells/{study}/{cell}/{variant}.parquet" for cell in POINTS[study] for variant in VARIANTS]


def cell_files(wildcards):
    return study_cell_files(wildcards.study)


def memory_cap_bytes():
    return int(config["memory_cap_mb"] * 2**20)


def all_outputs():
    """Every file of the run. The cell files and references are asked for too: one that is missing
    (deleted, or removed as corrupt) is then made again, even where the merged table is newer."""
    outputs = []
    for study in POINTS:
        outputs += study_cell_files(study)
        outputs += [f"results/cells/{study}/{cell}/reference.npz" for cell in POINTS[study]]
        outputs.append(f"results/{study}.parquet")
        outputs += [f"results/tables/{study}.md", f"results/tables/{study}.tex"]
        outputs += expand(
            "results/figures/{study}/{figure}.{ext}",
            study=study,
            figure=get_study(study).figures,
            ext=["pdf", "png"],
        )
    if "profile" in POINTS:
        outputs += expand("results/cells/profile/{cell}/{variant}.pstats", cell=POINTS["profile"], variant=VARIANTS)
    return outputs + ["results/paper/numbers.json", "results/paper/numbers.tex"]


def profile_used():
    """The profile named on the command line (--workflow-profile or --profile), else None."""
    for flag in ("--workflow-profile", "--profile"):
        if flag in sys.argv[:-1]:
            return sys.argv[sys.argv.index(flag) + 1]
    return None


def write_run_manifest():
    from pymdpbench.harness import write_manifest
    from pymdpbench.results import threads_used

    write_manifest(
        "results/manifest.json",
        command=COMMAND_LINE,
        config=config,
        profile=profile_used(),
        config_files=workflow.overwrite_configfiles or ["config/config.yaml"],
        started=RUN_STARTED,
        ended=time.time(),
        cell_threads=threads_used(f"results/{study}.parquet" for study in POINTS),
    )


# Resources per cell (pymdpbench.resources.cell_mem_mb / cell_runtime_min): they grow with the cell's
# model and double on each retry attempt.


def cell_variant(wildcards):
    """The reference cell has no variant wildcard: it runs the standard engine."""
    return wildcards.get("variant", "standard")


def cell_mem_mb(wildcards, attempt):
    return pymdpbench.resources.cell_mem_mb(
        get_study(wildcards.study), point_of(wildcards), cell_variant(wildcards), attempt
    )


def cell_runtime(wildcards, attempt):
    return pymdpbench.resources.cell_runtime_min(
        get_study(wildcards.study),
        point_of(wildcards),
        cell_variant(wildcards),
        attempt,
        config["timing"].get("processes", 1),
    )
