"""Two runs compared cell by cell: a real regression fails (exit 1), identical runs pass (exit 0)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pymdpbench import compare, results, runs, stats

CELLS = ["s8-o8-a4-h1", "s64-o8-a4-h1", "s512-o8-a4-h1"]


def synthetic_run(path, run_id, slow_cell=None, factor=1.0, seed=0, environment=None):
    """A run folder as the workflow archives it: a manifest and a merged inference table whose
    samples are log-normal around 1 ms (``slow_cell``'s numba samples ``factor`` times slower)."""
    rng = np.random.default_rng(seed)
    rows = []
    for cell in CELLS:
        for variant in ("standard", "numba"):
            scale = 1e-3 * (factor if (cell, variant) == (slow_cell, "numba") else 1.0)
            samples = (scale * rng.lognormal(0.0, 0.03, size=20)).tolist()
            rows.append(
                {
                    "study": "inference",
                    "cell": cell,
                    "variant": variant,
                    "model": "random",
                    "status": "ok",
                    "samples_s": samples,
                    "step_time_s": float(np.median(samples)),
                    "gate_pass": True,
                }
            )
    env = environment or {"host": "a", "cpu_model": "x", "distributions": {"numpy": "2.0"}}
    path.mkdir(parents=True)
    results.write_rows(rows, path / "inference.parquet", env)
    (path / "manifest.json").write_text(
        json.dumps(
            {
                "run_id": run_id,
                "started": "2026-01-01T00:00:00+00:00",
                "ended": "2026-01-01T00:10:00+00:00",
                "config_files": [],
                "environment": env,
            }
        )
    )
    return path


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "pymdpbench", *args], cwd=cwd, capture_output=True, text=True)


def test_regression_beyond_threshold_exits_non_zero(tmp_path):
    old = synthetic_run(tmp_path / "results/runs/A", "A", seed=1)
    new = synthetic_run(tmp_path / "results/runs/B", "B", slow_cell="s64-o8-a4-h1", factor=1.5, seed=2)
    result = cli("compare", str(old), str(new), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    slow_line = next(line for line in result.stdout.splitlines() if "s64-o8-a4-h1" in line and "numba" in line)
    assert "!slower" in slow_line
    assert "REGRESSION: 1 of 6" in result.stdout


def test_identical_runs_exit_zero(tmp_path):
    synthetic_run(tmp_path / "results/runs/A", "A", seed=1)
    synthetic_run(tmp_path / "results/runs/B", "B", seed=1)
    result = cli("compare", "A", "B", cwd=tmp_path)  # by run id, found under results/runs
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 compared" in result.stdout and "0 slower" in result.stdout
    assert "environments: identical" in result.stdout


def test_noise_alone_is_not_a_regression(tmp_path):
    """Different draws of the same distribution: nothing significant beyond the threshold."""
    old = runs.load_rows(synthetic_run(tmp_path / "A", "A", seed=1))
    new = runs.load_rows(synthetic_run(tmp_path / "B", "B", seed=2))
    assert compare.regressions(compare.compare_runs(old, new)).empty


def test_a_faster_run_is_not_a_regression(tmp_path):
    old = synthetic_run(tmp_path / "A", "A", seed=1)
    new = synthetic_run(tmp_path / "B", "B", slow_cell="s8-o8-a4-h1", factor=0.5, seed=2)
    table = compare.compare_runs(runs.load_rows(old), runs.load_rows(new))
    verdicts = dict(zip(zip(table["cell"], table["variant"]), table["verdict"]))
    assert verdicts[("s8-o8-a4-h1", "numba")] == "faster"
    assert compare.regressions(table).empty


def test_a_newly_failing_gate_is_a_regression(tmp_path):
    old = runs.load_rows(synthetic_run(tmp_path / "A", "A", seed=1))
    new = runs.load_rows(synthetic_run(tmp_path / "B", "B", seed=1))
    new.loc[(new["cell"] == "s8-o8-a4-h1") & (new["variant"] == "numba"), "gate_pass"] = False
    assert list(compare.regressions(compare.compare_runs(old, new))["verdict"]) == ["gate failed"]


def test_environment_differences_are_named(tmp_path):
    old = synthetic_run(tmp_path / "A", "A", seed=1)
    new = synthetic_run(
        tmp_path / "B",
        "B",
        seed=1,
        environment={"host": "b", "cpu_model": "x", "distributions": {"numpy": "2.1", "numba": "0.6"}},
    )
    result = cli("compare", str(old), str(new), cwd=tmp_path)
    assert result.returncode == 0
    assert "host: a -> b" in result.stdout
    assert "distributions:numpy: 2.0 -> 2.1" in result.stdout
    assert "distributions:numba: None -> 0.6" in result.stdout


@pytest.mark.parametrize("spec", ["nope", "latest"])
def test_unknown_run_is_a_clear_error(tmp_path, spec):
    result = cli("compare", spec, spec, cwd=tmp_path)
    assert result.returncode == 2
    assert repr(spec) in result.stderr and "results/runs" in result.stderr


def test_per_process_medians_are_the_units_of_a_multi_process_row():
    assert stats.timing_units([1.0, 1.1, 5.0, 5.1], [0, 0, 1, 1]).tolist() == [1.05, 5.05]
    assert stats.timing_units([1.0, 2.0], None).tolist() == [1.0, 2.0]


def test_a_run_of_an_older_schema_stays_comparable(tmp_path):
    """A run archived before columns were added (here: without sample_process and gate_pass)."""
    import pyarrow.parquet as pq

    old = synthetic_run(tmp_path / "A", "A", seed=1)
    table = pq.read_table(old / "inference.parquet")
    pq.write_table(table.drop_columns(["sample_process", "gate_pass", "host"]), old / "inference.parquet")
    new = synthetic_run(tmp_path / "B", "B", seed=1)
    result = cli("compare", str(old), str(new), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "6 compared" in result.stdout


def test_planning_flops_counts_each_policy_prefix_once():
    from pymdpbench.models import random_model

    one = random_model(0, [8], [4], [3])
    # H2: 1 + 3 parents, each 2*8*8*3 flops for the next states; 3 + 9 nodes, each 2*4*8 + 4*4 + 2*8
    assert compare.planning_flops(one, 2) == 4 * 384 + 12 * 96
    two = random_model(0, [4, 3], [5], [2, 3], A_factor_list=[[1]])
    # 6 joint actions, H1: the root's next states for both factors; 6 nodes of one modality over factor 1
    assert compare.planning_flops(two, 1) == (2 * 4 * 4 * 2 + 2 * 3 * 3 * 3) + 6 * (2 * 5 * 3 + 4 * 5 + 2 * 3)


def test_peak_flops_is_a_rate():
    assert compare.peak_flops(n=32, min_time_s=0.005) > 1e6
