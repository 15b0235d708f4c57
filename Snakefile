from snakemake.utils import min_version, validate

# The SLURM profile and the logger plugins need Snakemake 9 (pyproject.toml pins the same range).
min_version("9.0")


# The default grid; a --configfile replaces it rather than extending it, so a config says all it runs.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


# `snakemake --lint` asks for a conda environment or container on every rule; it is the one lint
# left, on purpose. Every rule runs a script that imports this package in the Python environment
# Snakemake itself runs in, pinned by requirements.lock (docs/reproducing.md): a per-rule conda
# environment would install the same package again per rule and time the cells in another stack
# than the one the manifest records. `.ci/lint` fails on any other lint.
include: "workflow/rules/common.smk"
include: "workflow/rules/cells.smk"
include: "workflow/rules/profile.smk"
include: "workflow/rules/aggregate.smk"


rule all:
    input:
        all_outputs(),


onsuccess:
    write_run_manifest()
