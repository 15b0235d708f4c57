"""Snakemake script: the headline numbers for the paper's text (JSON and LaTeX macros)."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

from pymdpbench.tables import write_numbers  # noqa: E402

write_numbers(snakemake.input, snakemake.output.json, snakemake.output.tex)  # noqa: F821
