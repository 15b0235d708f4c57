"""How a cell is measured: threads, timing samples, memory, load, and the environment it ran in.

Small probes in the style of pyperf's metadata collectors: each one that cannot answer warns
(returns None or "unknown") and the run goes on.
"""

import os
import platform
import subprocess
import sys
import time
import tracemalloc
from importlib import metadata
from pathlib import Path

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def apply_threads(threads):
    """Pin BLAS, OpenMP, numba and XLA to ``threads`` and return what BLAS really uses.

    Environment variables only bind libraries loaded later, so this also limits already loaded
    BLAS pools through threadpoolctl and records their real sizes.
    """
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false" if threads == 1 else ""
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(threads)
    return {pool["internal_api"]: pool["num_threads"] for pool in threadpool_info()}


def thread_settings():
    """The thread variables as set now (for the row and the file metadata)."""
    return {name: os.environ.get(name, "") for name in (*THREAD_VARIABLES, "XLA_FLAGS")}


def load_average():
    """1-minute load average of the machine, or None where the OS has none."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def calibrate(step, min_sample_s, max_inner=1_000_000):
    """Number of consecutive steps per sample so that one sample lasts at least ``min_sample_s``.

    Like pyperf's loop calibration: double the inner count until the clock has enough to measure.
    """
    inner = 1
    while inner < max_inner:
        t0 = time.perf_counter()
        for _ in range(inner):
            step()
        if time.perf_counter() - t0 >= min_sample_s:
            break
        inner *= 2
    return inner


def time_samples(step, num_samples, inner, monitor=None):
    """``num_samples`` samples of ``inner`` steps each; returns seconds per step for each sample."""
    samples = []
    for _ in range(num_samples):
        t0 = time.perf_counter()
        for _ in range(inner):
            step()
        samples.append((time.perf_counter() - t0) / inner)
        if monitor is not None:
            monitor.update(samples[-1])
    return samples


def timed(fn):
    """Call ``fn`` once; return (result, seconds)."""
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def rss_bytes():
    import psutil

    return psutil.Process().memory_info().rss


def _reset_peak_rss():
    """Reset the kernel's peak-RSS counter of this process (Linux >= 4.0); False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def peak_memory(run, interval_s=0.002):
    """Run ``run()`` and return (tracemalloc peak bytes, peak RSS bytes).

    tracemalloc sees Python and numpy allocations made during the call (not numba's or XLA's own);
    the RSS peak covers everything: on Linux the kernel's own high-water mark (reset just before
    the call), elsewhere psutil samples from a thread every ``interval_s``. No child process is
    forked: forking after JAX has started its threads can deadlock.
    """
    import threading

    exact = _reset_peak_rss()
    samples, done = [rss_bytes()], threading.Event()

    def sample():
        while not done.wait(interval_s):
            samples.append(rss_bytes())

    sampler = None if exact else threading.Thread(target=sample, daemon=True)
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        if sampler:
            sampler.start()
        run()
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        done.set()
        if sampler:
            sampler.join()
    samples.append(rss_bytes())
    return int(traced_peak), int(_peak_rss_bytes() if exact else max(samples))


def _version(package):
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_state(cwd=None):
    """(commit, dirty) of the project checkout, or ("unknown", None) outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", None


def _read(path):
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cpu_flags():
    """The CPU's feature flags (/proc/cpuinfo), space-separated; None where unreadable."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_frequency():
    """Frequency governor, current/min/max MHz and turbo state where the OS exposes them (Linux
    cpufreq); each entry None where it cannot be read (VMs and containers often hide cpufreq)."""
    base = Path("/sys/devices/system/cpu/cpu0/cpufreq")
    khz = {name: _read(base / f"scaling_{name}_freq") for name in ("cur", "min", "max")}
    mhz = None
    try:
        with open("/proc/cpuinfo") as f:
            mhz = next((float(line.split(":", 1)[1]) for line in f if line.startswith("cpu MHz")), None)
    except OSError:
        pass
    no_turbo = _read("/sys/devices/system/cpu/intel_pstate/no_turbo")
    boost = _read("/sys/devices/system/cpu/cpufreq/boost")
    turbo = None if no_turbo is None and boost is None else (no_turbo == "0" if no_turbo is not None else boost == "1")
    return {
        "cpu_governor": _read(base / "scaling_governor"),
        "cpu_mhz_now": float(khz["cur"]) / 1000 if khz["cur"] else mhz,
        "cpu_mhz_min": float(khz["min"]) / 1000 if khz["min"] else None,
        "cpu_mhz_max": float(khz["max"]) / 1000 if khz["max"] else None,
        "cpu_turbo": turbo,
    }


def blas_build():
    """Each loaded BLAS/LAPACK/OpenMP library as threadpoolctl sees it: API, implementation,
    version, threading layer, architecture it was tuned for, file."""
    import numpy  # noqa: F401  (loads numpy's BLAS, so that it is seen)
    import scipy.linalg  # noqa: F401  (and scipy's, if it has its own)
    from threadpoolctl import threadpool_info

    keys = ("user_api", "internal_api", "version", "threading_layer", "architecture", "filepath")
    return [{key: pool.get(key) for key in keys} for pool in threadpool_info()]


def distributions():
    """Every installed distribution and its version (importlib.metadata), sorted by name."""
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[name] = dist.version
    return dict(sorted(found.items(), key=lambda item: item[0].lower()))


def host():
    return platform.node()


def environment():
    """Versions, CPU, threads and git state: stored in every Parquet file and the run manifest.

    ``version_*`` names the packages a reader looks for first; ``distributions`` holds every
    installed one; ``blas`` the BLAS/LAPACK build; the CPU's flags and frequency where readable.
    """
    import psutil

    commit, dirty = git_state()
    env = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": host(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "ram_bytes": psutil.virtual_memory().total,
        "git_commit": commit,
        "git_dirty": dirty,
    }
    for package in (
        "inferactively-pymdp",
        "numpy",
        "scipy",
        "numba",
        "llvmlite",
        "jax",
        "jaxlib",
        "pandas",
        "pyarrow",
        "snakemake",
        "pymdpbench",
    ):
        env[f"version_{package}"] = _version(package)
    env.update(thread_settings())
    env.update(cpu_frequency())
    env["cpu_flags"] = cpu_flags()
    env["blas"] = blas_build()
    env["distributions"] = distributions()
    return env


class Monitor:
    """Live progress of a long cell: every ``every_s`` seconds, one log line with the rolling mean
    and spread of step time and the current RSS; the rolling statistics are kept for the row."""

    def __init__(self, label, total, window=10, every_s=2.0, stream=sys.stderr):
        self.label, self.total, self.window, self.every_s, self.stream = label, total, window, every_s, stream
        self.samples, self.rolling_mean_s, self.rolling_std_s, self.rss_trace_bytes = [], [], [], []
        self._last = time.perf_counter()

    def update(self, sample_s):
        import numpy as np

        self.samples.append(sample_s)
        recent = np.asarray(self.samples[-self.window :])
        self.rolling_mean_s.append(float(recent.mean()))
        self.rolling_std_s.append(float(recent.std()))
        self.rss_trace_bytes.append(rss_bytes())
        now = time.perf_counter()
        if now - self._last >= self.every_s or len(self.samples) == self.total:
            self._last = now
            print(
                f"[{self.label}] sample {len(self.samples)}/{self.total}: "
                f"step {self.rolling_mean_s[-1] * 1e6:.1f} us ± {self.rolling_std_s[-1] * 1e6:.1f} "
                f"(rolling {self.window}), rss {self.rss_trace_bytes[-1] / 2**20:.0f} MiB",
                file=self.stream,
                flush=True,
            )


def timing_across_processes(row, cell):
    """Time the cell of ``row`` in ``timing["processes"] - 1`` more fresh processes, one after
    another, and return the row's timing columns over all of them (``stats.across_processes``;
    with one process: the variance and process columns of the cell's own samples).

    Each process is ``python -m pymdpbench time-cell``: a new interpreter (its own hash seed,
    memory layout, JIT code placement) that builds the same seeded model and agent and times it
    as the cell did; the cell's own samples are process 0. Only the timing is taken from the
    other processes: gate, memory and every other column stay the cell's own.
    """
    import json
    import tempfile

    from pymdpbench import results, stats

    timing = cell["timing"]
    processes = timing.get("processes", 1)
    per_process = [row["samples_s"]]
    spec = {**cell, "timing": {**timing, "processes": 1}, "reference_path": None, "write_reference": None}
    with tempfile.TemporaryDirectory(prefix="pymdpbench-processes-") as tmp:
        spec_path = Path(tmp) / "cell.json"
        spec_path.write_text(json.dumps(spec, default=str))
        for i in range(1, processes):
            out = Path(tmp) / f"process{i}.parquet"
            subprocess.run([sys.executable, "-m", "pymdpbench", "time-cell", str(spec_path), str(out)], check=True)
            per_process.append(results.read_cell(out).column("samples_s")[0].as_py())
    return stats.across_processes(per_process, timing["unstable_iqr_ratio"], seed=row["seed"] % 2**32)


def write_run_record(path, config, config_files):
    """The run's record for the report: config files, config as used, environment. (The command
    line is the manifest's: as a job parameter it would rerun this job whenever a flag changes.)"""
    import json

    from pymdpbench.results import write_text

    record = {"config_files": list(config_files), "config": config, "environment": environment()}
    write_text(path, json.dumps(record, indent=2, default=str) + "\n")
    return record


def write_manifest(path, command, config, profile, config_files, started, ended, cell_threads=None):
    """``results/manifest.json``: everything a stranger needs to rerun this run the same way; then
    the run is archived under ``results/runs/<run_id>/`` (``pymdpbench.runs.archive``).
    ``cell_threads``: the threads the cells really used (``results.threads_used``); the environment's
    thread settings are those of the Snakemake process, not of the cells."""
    import datetime
    import json
    import uuid

    from pymdpbench import lockfile
    from pymdpbench.results import write_text

    def iso(t):
        return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat()

    manifest = {
        "run_id": f"{datetime.datetime.fromtimestamp(started, datetime.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}",
        "command": command,
        "profile": profile,
        "config_files": list(config_files),
        "config": config,
        "started": iso(started),
        "ended": iso(ended),
        "environment": environment(),
        "lock": lockfile.lock_status(),  # did the run use requirements.lock (docs/reproducing.md)
        "cell_threads": cell_threads,
    }
    write_text(path, json.dumps(manifest, indent=2, default=str) + "\n")
    from pymdpbench import runs

    runs.archive(Path(path).parent, manifest["run_id"])
    return manifest
