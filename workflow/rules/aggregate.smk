# Cells -> study tables -> figures, tables (markdown, LaTeX), headline numbers, the run record.
# Every figure, table, merged Parquet file and the record are marked for `snakemake --report`,
# captioned from workflow/report/. They take seconds and
# run where Snakemake runs, never as cluster jobs.
import mimetypes

# so that `snakemake --report` offers the merged tables as Parquet files, not as text
mimetypes.add_type("application/vnd.apache.parquet", ".parquet")


localrules:
    merge,
    figure,
    table,
    numbers,


rule merge:
    input:
        cell_files,
    output:
        report(
            "results/{study}.parquet",
            caption="../report/data.rst",
            category="{study}",
            subcategory="data",
            labels={"study": "{study}", "file": "merged Parquet"},
        ),
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
        png=report(
            "results/figures/{study}/{figure}.png",
            caption="../report/figure.rst",
            category="{study}",
            subcategory="figures",
            labels={"study": "{study}", "figure": "{figure}"},
        ),
    log:
        "results/logs/{study}/figure_{figure}.log",
    script:
        "../../scripts/figure.py"


rule table:
    input:
        "results/{study}.parquet",
    output:
        markdown=report(
            "results/tables/{study}.md",
            caption="../report/table.rst",
            category="{study}",
            subcategory="tables",
            labels={"study": "{study}", "table": "markdown"},
        ),
        latex=report(
            "results/tables/{study}.tex",
            caption="../report/table.rst",
            category="{study}",
            subcategory="tables",
            labels={"study": "{study}", "table": "LaTeX"},
        ),
    log:
        "results/logs/{study}/table.log",
    script:
        "../../scripts/table.py"


rule numbers:
    input:
        expand("results/{study}.parquet", study=POINTS),
    output:
        json=report(
            "results/paper/numbers.json",
            caption="../report/numbers.rst",
            category="paper",
            labels={"file": "numbers.json"},
        ),
        tex=report(
            "results/paper/numbers.tex",
            caption="../report/numbers.rst",
            category="paper",
            labels={"file": "numbers.tex"},
        ),
        record=report(
            "results/paper/run.json",
            caption="../report/run.rst",
            category="paper",
            labels={"file": "run.json (manifest)"},
        ),
    log:
        "results/logs/numbers.log",
    params:
        config=config,
        config_files=workflow.overwrite_configfiles or ["config/config.yaml"],
    script:
        "../../scripts/headline_numbers.py"
