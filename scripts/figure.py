"""Snakemake script: render one figure of a study from its merged table (PDF and PNG)."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

from pymdpbench.figures import render  # noqa: E402

render(snakemake.wildcards.figure, snakemake.input[0], [snakemake.output.pdf, snakemake.output.png])  # noqa: F821
