"""Snakemake script: the markdown table of a study's merged results."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

from pymdpbench.tables import write_markdown  # noqa: E402

write_markdown(snakemake.input[0], snakemake.output[0])  # noqa: F821
