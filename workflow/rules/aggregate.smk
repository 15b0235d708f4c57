# Cells -> study tables -> figures and markdown tables.


rule merge:
    input:
        cell_files,
    output:
        "results/{study}.parquet",
    log:
        "results/logs/{study}/merge.log",
    params:
        skip_bad=config["skip_bad_cells"],
    script:
        "../../scripts/merge.py"


rule figure:
    input:
        "results/{study}.parquet",
    output:
        pdf="results/figures/{study}/{figure}.pdf",
        png="results/figures/{study}/{figure}.png",
    log:
        "results/logs/{study}/figure_{figure}.log",
    script:
        "../../scripts/figure.py"


rule table:
    input:
        "results/{study}.parquet",
    output:
        "results/tables/{study}.md",
    log:
        "results/logs/{study}/table.log",
    script:
        "../../scripts/table.py"
