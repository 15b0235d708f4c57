# One rule per kind of cell: a grid point and a variant -> one Parquet file.
# Declare bench_slot=1 on every timed cell: `--resources bench_slot=1` then serialises timing.
# Snakemake's benchmark file of each job (wall time, peak RSS, CPU) lands in results/benchmarks/.


ruleorder: reference > variant_cell


rule reference:
    """pymdp's standard agent: its row and the reference trajectory every other variant is checked against."""
    input:
        models=model_files,
    output:
        cell="results/cells/{study}/{cell}/standard.parquet",
        reference="results/cells/{study}/{cell}/reference.npz",
    log:
        "results/logs/{study}/{cell}/standard.log",
    benchmark:
        "results/benchmarks/{study}/{cell}/standard.tsv"
    threads: cell_threads
    resources:
        bench_slot=1,
        mem_mb=cell_mem_mb,
        runtime=cell_runtime,
    params:
        point=point_of,
        engine=ENGINES["standard"],
        seed=config["seed"],
        timing=config["timing"],
        memory_cap_bytes=memory_cap_bytes(),
    script:
        "../../scripts/run_cell.py"


rule variant_cell:
    """Any other variant, replaying the reference's observations and compared with its trajectory."""
    input:
        models=model_files,
        reference="results/cells/{study}/{cell}/reference.npz",
    output:
        cell="results/cells/{study}/{cell}/{variant}.parquet",
    log:
        "results/logs/{study}/{cell}/{variant}.log",
    benchmark:
        "results/benchmarks/{study}/{cell}/{variant}.tsv"
    threads: cell_threads
    resources:
        bench_slot=1,
        mem_mb=cell_mem_mb,
        runtime=cell_runtime,
    params:
        point=point_of,
        engine=engine_path,
        seed=config["seed"],
        timing=config["timing"],
        memory_cap_bytes=memory_cap_bytes(),
    script:
        "../../scripts/run_cell.py"
