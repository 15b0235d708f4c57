"""Check that a finished run holds every expected row: each grid point x each variant, all gated."""

import sys

import pandas as pd
import yaml
from snakemake.utils import validate

from pymdpbench.studies import get_study

config = yaml.safe_load(open(sys.argv[1]))
validate(config, "workflow/schemas/config.schema.yaml")  # fills in the defaults the run used
variants = {"standard", *config["variants"]}
failures = []
for study, settings in config["studies"].items():
    df = pd.read_parquet(f"results/{study}.parquet")
    expected = {(p["cell"], v) for p in get_study(study).points(settings) for v in variants}
    found = set(zip(df["cell"], df["variant"]))
    if found != expected:
        failures.append(f"{study}: missing {sorted(expected - found)}, unexpected {sorted(found - expected)}")
    ran = df[df["status"] == "ok"]
    failed = ran[ran["gate_pass"].eq(False)]  # None: the point has no reference, with the reason in the row
    if len(failed):
        failures.append(f"{study}: gate failed in {sorted(zip(failed['cell'], failed['variant']))}")
    print(f"{study}: {len(df)} rows, {len(ran)} ran, {int(ran['gate_pass'].sum())} passed the gate")
if failures:
    sys.exit("\n".join(failures))
