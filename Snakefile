from snakemake.utils import validate


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/cells.smk"
include: "workflow/rules/aggregate.smk"


rule all:
    input:
        all_outputs(),
