"""Snakemake script: a study's tables (markdown and LaTeX) from its merged results."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

from pymdpbench.tables import write_tables  # noqa: E402

write_tables(snakemake.input[0], snakemake.output.markdown, snakemake.output.latex)  # noqa: F821
