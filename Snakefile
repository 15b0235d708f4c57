from snakemake.utils import validate


# The default grid; a --configfile replaces it rather than extending it, so a config says all it runs.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/cells.smk"
include: "workflow/rules/profile.smk"
include: "workflow/rules/aggregate.smk"


rule all:
    input:
        all_outputs(),


onsuccess:
    write_run_manifest()
