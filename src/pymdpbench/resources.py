"""What a cell will need, known before anything is built: model bytes for the resource guard, and
the memory and runtime a scheduler is asked for.

Light on imports on purpose: Snakemake evaluates these for every job while it builds the DAG.
"""

import math

from pymdpbench.engines import traits


def estimated_bytes(study, point, variant):
    """Model bytes this variant would hold for the point, before anything is built: the engine's
    bytes per stored entry, times the density for an engine that stores only non-zeros."""
    entries, density = study.model_entries(point)
    declared = traits(variant)
    return int(entries * declared.bytes_per_entry * (density if declared.storage == "sparse" else 1.0))


#: MiB a cell process holds before its model: interpreter, numpy, scipy, numba, JAX (measured RSS
#: of a small cell is about 210 MiB for the standard engine, under 400 MiB for the JAX one).
CELL_BASE_MEM_MB = 500
#: copies of the model a cell holds at its peak (agent, warm-up agent, gate agent, work arrays).
CELL_MODEL_COPIES = 6
#: minutes a cell takes before its model: imports, compilation or cache load, gate, timing.
CELL_BASE_RUNTIME_MIN = 2
#: model bytes per extra minute of runtime (one step touches every entry of A and B).
CELL_BYTES_PER_MINUTE = 2**27


def cell_mem_mb(study, point, variant, attempt=1):
    """MiB to request for a cell: libraries plus its model's copies, doubled on each retry."""
    model_mb = CELL_MODEL_COPIES * estimated_bytes(study, point, variant) / 2**20
    return math.ceil(CELL_BASE_MEM_MB + model_mb) * 2 ** (attempt - 1)


def cell_runtime_min(study, point, variant, attempt=1, processes=1):
    """Minutes to request for a cell: a fixed start plus one per 128 MiB of model, for each of the
    ``processes`` its timing runs in (``timing.processes``), doubled on each retry."""
    minutes = CELL_BASE_RUNTIME_MIN + math.ceil(estimated_bytes(study, point, variant) / CELL_BYTES_PER_MINUTE)
    return minutes * processes * 2 ** (attempt - 1)
