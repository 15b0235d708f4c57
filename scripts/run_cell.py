"""Snakemake script: measure one grid cell with one variant and write its Parquet row."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)

from pymdpbench.cell import write_cell  # noqa: E402

write_cell(
    snakemake.output.cell,  # noqa: F821
    study_name=snakemake.wildcards.study,  # noqa: F821
    point=snakemake.params.point,  # noqa: F821
    variant=snakemake.wildcards.get("variant", "standard"),  # noqa: F821
    engine=snakemake.params.engine,  # noqa: F821
    master_seed=snakemake.params.seed,  # noqa: F821
    timing=snakemake.params.timing,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
    memory_cap_bytes=snakemake.params.memory_cap_bytes,  # noqa: F821
    reference_path=snakemake.input.get("reference"),  # noqa: F821
    write_reference=snakemake.output.get("reference"),  # noqa: F821
)
