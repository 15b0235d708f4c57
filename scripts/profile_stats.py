"""Snakemake script: unpack a profile cell's pstats file from its row."""

import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

from pymdpbench.studies.profile import write_pstats  # noqa: E402

write_pstats(snakemake.input[0], snakemake.output[0])  # noqa: F821
