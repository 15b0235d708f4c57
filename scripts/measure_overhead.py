"""What every job of the pipeline pays before it measures anything: interpreter start and imports.

    python scripts/measure_overhead.py              # 5 fresh processes per item, medians
    python scripts/measure_overhead.py --repeats 9 --snakemake

Each item runs in fresh Python processes (as a Snakemake job does) and reports the process's wall
time and, inside it, the time of the import or step itself. Numba's first step is measured three
ways: kernels compiled from scratch (an empty NUMBA_CACHE_DIR), loaded from that disk cache on the
next process, and with the project's own cache. ``--snakemake`` adds the cost of starting Snakemake
on the test config (what every cluster job step pays to re-read the workflow).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

IMPORTS = {
    "interpreter start (python -c pass)": "",
    "import snakemake.script (every script job)": "import snakemake.script",
    "import pymdpbench.cell": "import pymdpbench.cell",
    "import numba": "import numba",
    "import jax": "import jax",
    "import pymdp.legacy.agent (standard engine)": "import pymdp.legacy.agent",
    "import pymdpbench.engines.numba": "import pymdpbench.engines.numba",
    "import pymdpbench.engines.jax": "import pymdpbench.engines.jax",
}

FIRST_STEP = """
import json, time
t0 = time.perf_counter()
from pymdpbench.engines import get_engine
from pymdpbench.models import random_model
from pymdpbench.studies import get_study
Agent = get_engine("numba")
t1 = time.perf_counter()
agent = Agent(**random_model(0, [8], [3], [2], name="random").agent_kwargs())
study = get_study("inference")
t2 = time.perf_counter()
study.step(agent, [0])
t3 = time.perf_counter()
study.step(agent, [1])
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_step_s": t3 - t2, "second_step_s": t4 - t3}))
"""


def run_python(code, env=None):
    """(wall seconds of a fresh interpreter running ``code``, its stdout)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
    return wall, done.stdout


def timed_import(statement):
    code = f"import time\nt = time.perf_counter()\n{statement}\nprint(time.perf_counter() - t)"
    wall, out = run_python(code)
    return wall, float(out)


def median_pair(samples):
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def measure_imports(repeats):
    print(f"{'item':46s} {'process s':>10s} {'in-process s':>13s}   (medians of {repeats})")
    for name, statement in IMPORTS.items():
        try:
            wall, inner = median_pair([timed_import(statement) for _ in range(repeats)])
            print(f"{name:46s} {wall:10.3f} {inner:13.3f}")
        except RuntimeError as err:
            print(f"{name:46s} failed: {err}")


def first_step(env):
    wall, out = run_python(FIRST_STEP, env)
    return wall, json.loads(out)


def measure_numba_cache(repeats):
    print("\nnumba engine, 8-state model: import, first step (compile or cache load), second step")
    with tempfile.TemporaryDirectory() as cache_dir:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
        cases = [
            ("empty cache: compile", env, 1),
            ("disk cache: load", env, repeats),
            ("project cache (default)", None, repeats),
        ]
        for name, case_env, n in cases:
            try:
                runs = [first_step(case_env) for _ in range(n)]
            except RuntimeError as err:
                print(f"  {name:26s} failed: {err}")
                continue
            wall = statistics.median(r[0] for r in runs)
            step = {k: statistics.median(r[1][k] for r in runs) for k in runs[0][1]}
            print(
                f"  {name:26s} process {wall:6.2f} s   import {step['import_s']:6.2f} s   "
                f"first step {step['first_step_s']:7.3f} s   second step {step['second_step_s'] * 1e3:6.2f} ms"
            )


def measure_snakemake(repeats):
    snakemake = Path(sys.executable).with_name("snakemake")
    command = [
        str(snakemake),
        "-n",
        "--quiet",
        "all",
        "--nolock",
        "--workflow-profile",
        "none",
        "--configfile",
        "config/test.yaml",
    ]
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, capture_output=True, check=True)
        walls.append(time.perf_counter() - start)
    print(f"\nsnakemake dry-run of config/test.yaml (parse + DAG): {statistics.median(walls):.2f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--snakemake", action="store_true", help="also time a Snakemake dry-run")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}\n")
    measure_imports(args.repeats)
    measure_numba_cache(args.repeats)
    if args.snakemake:
        measure_snakemake(args.repeats)


if __name__ == "__main__":
    main()
