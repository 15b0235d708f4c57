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
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, timeout=10, check=True).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", None


def environment():
    """Versions, CPU, threads and git state: stored in every Parquet file and the run manifest."""
    import psutil

    commit, dirty = git_state()
    env = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": platform.node(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "ram_bytes": psutil.virtual_memory().total,
        "git_commit": commit,
        "git_dirty": dirty,
    }
    for package in ("inferactively-pymdp", "numpy", "scipy", "numba", "llvmlite", "jax", "jaxlib",
                    "pandas", "pyarrow", "snakemake", "pymdpbench"):
        env[f"version_{package}"] = _version(package)
    env.update(thread_settings())
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
        recent = np.asarray(self.samples[-self.window:])
        self.rolling_mean_s.append(float(recent.mean()))
        self.rolling_std_s.append(float(recent.std()))
        self.rss_trace_bytes.append(rss_bytes())
        now = time.perf_counter()
        if now - self._last >= self.every_s or len(self.samples) == self.total:
            self._last = now
            print(f"[{self.label}] sample {len(self.samples)}/{self.total}: "
                  f"step {self.rolling_mean_s[-1] * 1e6:.1f} us ± {self.rolling_std_s[-1] * 1e6:.1f} "
                  f"(rolling {self.window}), rss {self.rss_trace_bytes[-1] / 2**20:.0f} MiB",
                  file=self.stream, flush=True)


def write_manifest(path, command, config, profile, config_files, started, ended):
    """``results/manifest.json``: everything a stranger needs to rerun this run the same way."""
    import datetime
    import json
    import uuid

    from pymdpbench.results import write_text

    def iso(t):
        return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat()

    manifest = {
        "run_id": f"{datetime.datetime.fromtimestamp(started, datetime.timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}",
        "command": command,
        "profile": profile,
        "config_files": list(config_files),
        "config": config,
        "started": iso(started),
        "ended": iso(ended),
        "environment": environment(),
    }
    write_text(path, json.dumps(manifest, indent=2, default=str) + "\n")
    return manifest
