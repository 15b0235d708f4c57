# Resources per cell, for local runs and cluster profiles: memory and runtime grow with the cell's
# model (estimated before anything is built, so it works for any study, sized or named) and with
# the retry attempt, so a cell killed for memory or time asks for twice as much on its next try.
import math

from pymdpbench.cell import estimated_bytes

#: MiB a cell process holds before its model: interpreter, numpy, scipy, numba, JAX (measured RSS
#: of a small cell is about 210 MiB for the standard engine, under 400 MiB for the JAX one).
CELL_BASE_MEM_MB = 500
#: copies of the model a cell holds at its peak (agent, warm-up agent, gate agent, work arrays).
CELL_MODEL_COPIES = 6
#: minutes a cell takes before its model: imports, compilation or cache load, gate, timing.
CELL_BASE_RUNTIME_MIN = 2
#: model bytes per extra minute of runtime (one step touches every entry of A and B).
CELL_BYTES_PER_MINUTE = 2**27


def cell_model_bytes(wildcards):
    """Model bytes of the cell's variant (the reference rule has no variant wildcard: standard)."""
    variant = wildcards.get("variant", "standard")
    return estimated_bytes(get_study(wildcards.study), point_of(wildcards), variant)


def retry_factor(attempt):
    """1 on the first attempt, then doubled on each retry."""
    return 2 ** (attempt - 1)


def cell_mem_mb(wildcards, attempt):
    """MiB for a cell: interpreter and libraries plus its model's copies, doubled on each retry."""
    model_mb = CELL_MODEL_COPIES * cell_model_bytes(wildcards) / 2**20
    return math.ceil(CELL_BASE_MEM_MB + model_mb) * retry_factor(attempt)


def cell_runtime(wildcards, attempt):
    """Minutes for a cell: a fixed start plus one minute per 128 MiB of model, doubled on each retry."""
    return (CELL_BASE_RUNTIME_MIN + math.ceil(cell_model_bytes(wildcards) / CELL_BYTES_PER_MINUTE)) * retry_factor(attempt)
