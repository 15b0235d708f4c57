# Resources per cell, for local runs and cluster profiles.


def cell_mem_mb(wildcards, attempt):
    """Memory for a cell: interpreter and libraries plus its model, doubled on each retry."""
    return 1000 * attempt


def cell_runtime(wildcards, attempt):
    """Minutes for a cell, doubled on each retry."""
    return 10 * attempt
