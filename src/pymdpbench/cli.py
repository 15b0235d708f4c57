"""``pymdpbench``: what a user does besides running ``snakemake`` itself.

    pymdpbench compare A B        two runs, cell by cell: ratio, 95 % CI, significance; exit 1 on a regression
    pymdpbench runs               the archived runs (results/runs/<run_id>/)
    pymdpbench models [--engines] the named models and GNN files: load, validate, which engines take them
    pymdpbench bench [--quick]    the engine benchmark: every engine side by side in one process
    pymdpbench time-cell SPEC OUT one cell measured in this process (what timing.processes starts)

``python -m pymdpbench`` is the same. Exit status: 0 success, 1 a regression (compare) or a model
that fails its check (models), 2 bad input (a run that cannot be found, a bad argument).
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cmd_compare(args):
    import pandas as pd

    from pymdpbench import compare, runs

    old_dir, new_dir = runs.resolve(args.old, args.results), runs.resolve(args.new, args.results)
    old_m, new_m = runs.manifest(old_dir), runs.manifest(new_dir)
    old, new = runs.load_rows(old_dir), runs.load_rows(new_dir)
    if args.study:
        old, new = old[old["study"].isin(args.study)], new[new["study"].isin(args.study)]
    print(f"old: {old_m['run_id']}  ({old_dir})\nnew: {new_m['run_id']}  ({new_dir})")
    diffs = compare.environment_differences(old_m.get("environment", {}), new_m.get("environment", {}))
    if diffs:
        print(f"environments differ in {len(diffs)} entries (ratios mix code and machine changes):")
        for key, a, b in diffs[: args.max_env]:
            print(f"  {key}: {a} -> {b}")
        if len(diffs) > args.max_env:
            print(f"  ... and {len(diffs) - args.max_env} more (--max-env)")
    else:
        print("environments: identical (host, CPU, versions of every distribution, BLAS, threads)")
    loads = [pd.to_numeric(df.loc[df["status"] == "ok", "load_avg_1m"]).median() for df in (old, new)]
    print(
        f"machine load while timing (median 1-minute load average of the rows): old {loads[0]:.2f}, "
        f"new {loads[1]:.2f} on {old_m.get('environment', {}).get('cpu_count', '?')} and "
        f"{new_m.get('environment', {}).get('cpu_count', '?')} CPUs"
    )
    comparison = compare.compare_runs(old, new, threshold=args.threshold, alpha=args.alpha)
    print(compare.format_comparison(comparison, args.threshold))
    only = {"only in old": len(_keys(old) - _keys(new)), "only in new": len(_keys(new) - _keys(old))}
    if any(only.values()):
        print(", ".join(f"{n} timed cells {where}" for where, n in only.items() if n))
    if args.csv:
        comparison.to_csv(args.csv, index=False)
    bad = compare.regressions(comparison)
    if len(bad):
        print(
            f"REGRESSION: {len(bad)} of {len(comparison)} (study, cell, variant) slower by more than "
            f"{args.threshold:.0%} (BH-adjusted p < {args.alpha}) or newly failing the gate"
        )
        return 1
    return 0


def _keys(df):
    ok = df[df["status"] == "ok"]
    return set(zip(ok["study"], ok["cell"], ok["variant"]))


def cmd_runs(args):
    from pymdpbench import runs

    found = runs.list_runs(args.results)
    if not found:
        print(f"no archived runs in {Path(args.results) / 'runs'}")
        return 0
    print(f"{'run id':<28} {'started (UTC)':<20} {'wall':>8} {'commit':<9} {'host':<16} {'configs':<24} studies")
    for run in found:
        wall = _wall(run["started"], run["ended"])
        commit = (run["git_commit"] or "?")[:7] + ("+" if run["git_dirty"] else "")
        print(
            f"{run['run_id']:<28} {(run['started'] or '?')[:19]:<20} {wall:>8} {commit:<9} "
            f"{(run['host'] or '?')[:16]:<16} {','.join(run['config_files'])[:24]:<24} {','.join(run['studies'])}"
        )
    return 0


def _wall(started, ended):
    import datetime

    try:
        seconds = (datetime.datetime.fromisoformat(ended) - datetime.datetime.fromisoformat(started)).total_seconds()
    except (TypeError, ValueError):
        return "?"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def cmd_models(args):
    from pymdpbench.models import validate_model
    from pymdpbench.named import NAMED_MODELS, load_named_model

    names = args.models or [*NAMED_MODELS, *sorted(str(p) for p in Path(args.dir).glob("*.md"))]
    if args.engines:
        from pymdpbench.engines import ENGINES, get_engine
    failed = 0
    print(f"{'model':<28} {'states':<14} {'outcomes':<14} {'actions':<10} check")
    for name in names:
        try:
            model = load_named_model(name, project_root=Path.cwd())
            validate_model(model)
        except Exception as err:  # a bad GNN file, an unknown name: say which and why
            failed += 1
            print(f"{name:<28} {'':<14} {'':<14} {'':<10} FAILED: {err}")
            continue
        print(f"{name:<28} {str(model.num_states):<14} {str(model.num_obs):<14} {str(model.num_controls):<10} ok")
        if args.engines:
            options = {
                "num_states": model.num_states,
                "num_obs": model.num_obs,
                "num_controls": model.num_controls,
                "policy_len": args.horizon,
            }
            for engine in ENGINES:
                ok, reason = get_engine(engine).supports(options)
                print(f"    {engine:<10} {'supported' if ok else 'not supported: ' + str(reason)}")
    return 1 if failed else 0


def cmd_bench(args):
    """The engine benchmark is scripts/bench_engines.py; it runs as its own process (one thread,
    as it pins itself), with the arguments passed on."""
    script = ROOT / "scripts" / "bench_engines.py"
    if not script.is_file():
        print(
            f"pymdpbench bench: {script} not found (it ships with the project checkout, not the wheel)", file=sys.stderr
        )
        return 2
    return subprocess.run([sys.executable, str(script), *args.bench_args]).returncode


def cmd_time_cell(args):
    """Measure one cell in this fresh process and write its row (the worker of timing.processes)."""
    from pymdpbench.cell import write_cell

    spec = json.loads(Path(args.spec).read_text())
    write_cell(args.out, **spec)
    return 0


def parser():
    top = argparse.ArgumentParser(
        prog="pymdpbench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("compare", help="compare two runs cell by cell; exit 1 on a regression")
    p.add_argument("old", help="baseline run: an archived run id (or unique prefix), latest, latest~N, or a folder")
    p.add_argument("new", help="run compared with it, named the same ways")
    p.add_argument("--threshold", type=float, default=0.1, help="ratio beyond 1 + threshold is a change (default 0.1)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level after BH adjustment (default 0.05)")
    p.add_argument("--study", nargs="+", help="only these studies")
    p.add_argument("--results", default="results", help="results folder holding runs/ (default results)")
    p.add_argument("--csv", help="also write the comparison as CSV to this path")
    p.add_argument("--max-env", type=int, default=25, help="environment differences printed at most (default 25)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("runs", help="list the archived runs")
    p.add_argument("--results", default="results", help="results folder holding runs/ (default results)")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("models", help="list and check the named models and GNN files")
    p.add_argument("models", nargs="*", help="model names or GNN files (default: every named model and --dir/*.md)")
    p.add_argument("--dir", default="config/models", help="folder of GNN files (default config/models)")
    p.add_argument("--engines", action="store_true", help="also say which engines support each model")
    p.add_argument("--horizon", type=int, default=1, help="policy length for --engines (default 1)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "bench", help="the engine benchmark (scripts/bench_engines.py); arguments pass through", add_help=False
    )
    p.set_defaults(func=cmd_bench)  # its arguments are the script's own: main() passes them on

    p = sub.add_parser("time-cell", help="measure one cell from a JSON spec in this process (timing.processes)")
    p.add_argument("spec", help="JSON file: the keyword arguments of pymdpbench.cell.write_cell")
    p.add_argument("out", help="Parquet file the row is written to")
    p.set_defaults(func=cmd_time_cell)
    return top


def main(argv=None):
    top = parser()
    args, rest = top.parse_known_args(argv)
    if args.command == "bench":
        args.bench_args = rest
    elif rest:
        top.error(f"unrecognized arguments: {' '.join(rest)}")
    from pymdpbench.results import ResultError
    from pymdpbench.runs import RunError

    try:
        return args.func(args)
    except (RunError, ResultError) as err:
        print(f"pymdpbench {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
