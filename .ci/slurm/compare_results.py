"""Compare two runs' merged tables on what a run computes, leaving out what it measures.

Usage: python compare_results.py CONFIG LOCAL_RESULTS_DIR CLUSTER_RESULTS_DIR
Timing, memory, machine load and environment columns differ between any two runs; every other
column (grid point, variant, seed, status, policies, model bytes, deviations, gate) must be equal.
"""

import sys

import pandas as pd
import yaml

KEY = ["study", "cell", "variant"]
COMPUTED = [
    "model",
    "status",
    "reason",
    "seed",
    "n_policies",
    "model_bytes",
    "q_pi_entropy",
    "n_action_diff",
    "tolerance",
    "gate_pass",
    "threads",
]
COMPUTED_PREFIXES = ("p_", "dev_")


def computed_columns(df):
    return KEY + [c for c in df.columns if c in COMPUTED or c.startswith(COMPUTED_PREFIXES)]


def differences(local, cluster):
    """Readable differences between two merged tables of one study; empty when they agree."""
    columns = computed_columns(local)
    if columns != computed_columns(cluster):
        return [f"columns differ: {columns} vs {computed_columns(cluster)}"]
    left = local[columns].sort_values(KEY).reset_index(drop=True)
    right = cluster[columns].sort_values(KEY).reset_index(drop=True)
    if len(left) != len(right) or not left[KEY].equals(right[KEY]):
        return [f"rows differ: {sorted(map(tuple, left[KEY].values))} vs {sorted(map(tuple, right[KEY].values))}"]
    found = []
    for column in columns[len(KEY) :]:
        same = (left[column] == right[column]) | (left[column].isna() & right[column].isna())
        for i in (~same).to_numpy().nonzero()[0]:
            found.append(f"{tuple(left.loc[i, KEY])} {column}: {left.loc[i, column]!r} vs {right.loc[i, column]!r}")
    return found


def main(config_path, local_dir, cluster_dir):
    failed = False
    for study in yaml.safe_load(open(config_path))["studies"]:
        local = pd.read_parquet(f"{local_dir}/{study}.parquet")
        cluster = pd.read_parquet(f"{cluster_dir}/{study}.parquet")
        found = differences(local, cluster)
        print(
            f"{study}: {len(cluster)} rows, {len(computed_columns(local))} computed columns compared, "
            f"{len(found)} differences"
        )
        for line in found[:20]:
            print(f"  {line}")
        failed |= bool(found)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
