# The profile study's statistics: each profiled cell's pstats file beside its Parquet
# (`python -m pstats results/cells/profile/<cell>/<variant>.pstats`). The profile ran once, in
# the cell; its row carries it, and this rule unpacks it, so the two never disagree.


rule profile_stats:
    """The pstats file of one profile cell, from its row."""
    input:
        "results/cells/profile/{cell}/{variant}.parquet",
    output:
        "results/cells/profile/{cell}/{variant}.pstats",
    log:
        "results/logs/profile/{cell}/{variant}_pstats.log",
    script:
        "../../scripts/profile_stats.py"
