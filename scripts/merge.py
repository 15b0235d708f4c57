"""Snakemake script: merge a study's validated cell files into one table."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

from pymdpbench.results import merge  # noqa: E402
from pymdpbench.studies import get_study  # noqa: E402

study = snakemake.wildcards.study  # noqa: F821
merge(
    snakemake.input,
    snakemake.output[0],
    skip_bad=snakemake.params.skip_bad,  # noqa: F821
    rows_per_cell=get_study(study).rows_per_cell,
    study=study,
)
