"""Snakemake script: the headline numbers for the paper's text (JSON and LaTeX macros) and the run record."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

from pymdpbench.harness import write_run_record  # noqa: E402
from pymdpbench.tables import write_numbers  # noqa: E402

write_numbers(snakemake.input, snakemake.output.json, snakemake.output.tex)  # noqa: F821
write_run_record(snakemake.output.record, snakemake.params.config, snakemake.params.config_files)  # noqa: F821
