"""One grid cell: a study's model, one engine, the correctness gate, timing and memory -> one row.

The order inside a cell: seed -> model -> resource guard -> warm-up agent (its first step holds the
JIT compilation or cache load) -> gate agent replays the seeded observations and is compared
with the reference trajectory -> the same, now warm, agent is timed -> memory is measured on a
few more steps. The standard variant writes the reference trajectory the others compare with.
"""

import itertools
import zlib

import numpy as np

from pymdpbench import gate, harness, results, stats
from pymdpbench.engines import get_engine, traits
from pymdpbench.models import validate_model
from pymdpbench.resources import estimated_bytes
from pymdpbench.studies import get_study


def cell_seed(master_seed, study, cell):
    """Deterministic seed of a grid point: the master seed and a CRC of "study/cell".

    Independent of the variant, so every variant of a point sees the same model and observations.
    """
    return int(np.random.SeedSequence([master_seed, zlib.crc32(f"{study}/{cell}".encode())]).generate_state(1)[0])


def derived_seeds(seed):
    """(model, observations, actions) seeds spawned from a cell seed."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(3)]


def held_bytes(arrays):
    """Bytes of A or B as an engine holds them: numpy arrays, scipy.sparse matrices, JAX arrays, nested lists."""
    if hasattr(arrays, "indptr"):
        return int(arrays.data.nbytes + arrays.indices.nbytes + arrays.indptr.nbytes)
    if isinstance(arrays, np.ndarray) and arrays.dtype != object:
        return int(arrays.nbytes)
    if hasattr(arrays, "nbytes") and not isinstance(arrays, np.ndarray):
        return int(arrays.nbytes)
    return int(sum(held_bytes(a) for a in arrays))


def run_cell(
    study_name,
    point,
    variant,
    master_seed,
    timing,
    threads=1,
    memory_cap_bytes=None,
    reference_path=None,
    write_reference=None,
    engine=None,
):
    """Measure one (study, point, variant) and return its row (a dict of the row schema).

    ``engine`` is the variant's "module:Class" path when it is not a registered name.
    """
    blas = harness.apply_threads(threads)
    study = get_study(study_name)
    seed = cell_seed(master_seed, study_name, point["cell"])
    model_seed, obs_seed, action_seed = derived_seeds(seed)
    owner = f"{study_name}/{point['cell']}"
    row = {
        "study": study_name,
        "cell": point["cell"],
        "variant": variant,
        "seed": seed,
        "threads": threads,
        "tolerance": None,
        **study.row_parameters(point),
    }

    supported, reason = study.supports(point, variant)
    if supported:
        Agent = get_engine(engine or variant)
        supported, reason = Agent.supports(study.options(point))
    needed = estimated_bytes(study, point, variant)
    if supported and memory_cap_bytes and needed > memory_cap_bytes:
        supported, reason = (
            False,
            f"model needs ~{needed / 2**20:.0f} MiB > memory cap {memory_cap_bytes / 2**20:.0f} MiB",
        )
    if not supported:
        if write_reference is not None:  # the point's other variants still run, without a reference
            gate.save_absent_reference(write_reference, f"standard skipped: {reason}", owner)
        return {**row, "status": "skipped", "reason": reason, "gate_pass": None}

    model = study.build_model(point, model_seed)
    validate_model(model)
    kwargs = {**model.agent_kwargs(), **study.agent_options(point)}
    observations = gate.observation_sequence(obs_seed, model.num_obs, timing["gate_steps"])

    warm = Agent(**kwargs)
    warmup_s = warm.warmup() if callable(getattr(warm, "warmup", None)) else 0.0
    _, first_step_s = harness.timed(
        lambda: gate.run_trajectory(warm, observations[:1], action_seed, learning=study.gate_learning)
    )

    agent, setup_time_s = harness.timed(lambda: Agent(**kwargs))
    reference, absent = (
        gate.load_reference(reference_path, study_name, point["cell"]) if reference_path is not None else (None, "")
    )
    shape = (len(observations), model.num_states, len(agent.policies), len(model.num_states))
    if reference is not None:  # a reference that does not fit this point's model: say so, and what to do
        try:
            reference.check_shapes(str(reference_path), *shape)
            reference.check_finite(str(reference_path))
        except (gate.TrajectoryError, FloatingPointError) as err:
            raise gate.TrajectoryError(f"{err}; {gate.REFERENCE_ADVICE}") from err
    forced = None
    if reference is not None and traits(engine or variant).rng != "numpy":  # its own generator: replay
        forced = reference.actions
    trajectory = gate.run_trajectory(
        agent, observations, action_seed, learning=study.gate_learning, forced_actions=forced
    )
    trajectory.check_finite(variant)
    trajectory.check_shapes(f"engine {variant}", *shape)
    if write_reference is not None:
        trajectory.save(write_reference, owner)
    row.update(_gate_row(traits(engine or variant).tolerance, trajectory, reference, absent))

    cycle = itertools.cycle(observations)
    step = lambda: study.step(agent, [int(o) for o in next(cycle)])  # noqa: E731
    inner = harness.calibrate(step, timing["min_sample_s"])
    monitor = harness.Monitor(f"{study_name}/{point['cell']}/{variant}", timing["samples"])
    samples = harness.time_samples(step, timing["samples"], inner, monitor)
    load = harness.load_average()
    traced_peak, rss_peak = harness.peak_memory(lambda: [step() for _ in range(timing["memory_steps"])])

    summary = stats.summarise(samples, timing["unstable_iqr_ratio"], seed=seed % 2**32)
    q_pi = trajectory.q_pi[-1]
    row.update(
        {
            "status": "ok",
            "reason": row.get("reason", ""),
            "n_policies": len(agent.policies),
            "model_bytes": held_bytes(agent.A) + held_bytes(agent.B),
            "setup_time_s": setup_time_s,
            "compile_time_s": warmup_s + max(0.0, first_step_s - summary["step_time_s"]),
            "samples_s": samples,
            "inner_loops": inner,
            **summary,
            "tracemalloc_peak_bytes": traced_peak,
            "rss_peak_bytes": rss_peak,
            "q_pi_entropy": float(-np.sum(q_pi * np.log(q_pi + 1e-16))),
            "blas_threads": ",".join(f"{k}={v}" for k, v in sorted(blas.items())),
            "load_avg_1m": load,
            "rolling_mean_s": monitor.rolling_mean_s,
            "rolling_std_s": monitor.rolling_std_s,
            "rss_trace_bytes": monitor.rss_trace_bytes,
        }
    )
    row.update(study.measure(Agent, kwargs, point, seed, timing))
    return row


def write_cell(out_path, **cell):
    """Measure a cell and write its row to ``out_path`` atomically, with the environment in the metadata."""
    row = {**run_cell(**cell), "host": harness.host()}
    if row["status"] == "ok" and row.get("samples_s"):  # timing.processes: CIs across fresh processes
        row.update(harness.timing_across_processes(row, cell))
    results.write_rows([row], out_path, harness.environment())
    return row


def _gate_row(tolerance, trajectory, reference, absent=""):
    """Deviation from the reference trajectory and pass/fail; the reference itself passes trivially.

    ``absent``: why the point has no reference (its standard cell was skipped); the gate columns
    then stay null, and the reason says so.
    """
    if absent:
        return {"tolerance": tolerance, "gate_pass": None, "reason": f"no reference: {absent}"}
    dev = gate.deviation(reference if reference is not None else trajectory, trajectory)
    return {**dev, "tolerance": tolerance, "gate_pass": gate.passes(dev, tolerance)}
