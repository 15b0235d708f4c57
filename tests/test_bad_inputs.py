"""Bad models and numerical faults: a clear error naming the matrix (and column), nothing written."""

import numpy as np
import pytest
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from pymdpbench import cell, gate
from pymdpbench.models import random_model, validate_model
from pymdpbench.studies import get_study

from conftest import ROOT


def model():
    return random_model(3, [4], [3], [2], name="toy")


def test_non_normalised_A_names_matrix_and_column():
    m = model()
    m.A[0][:, 2] *= 1.5
    with pytest.raises(ValueError, match=r"toy: A\[0\] is not normalised: column \(2,\) sums to 1\.5"):
        validate_model(m)


def test_non_normalised_D_is_named():
    m = model()
    m.D[0] = m.D[0] * 0.5
    with pytest.raises(ValueError, match=r"D\[0\] is not normalised"):
        validate_model(m)


def test_negative_probability_is_named():
    m = model()
    m.B[0][0, 1, 0] -= 2.0
    m.B[0][1, 1, 0] += 2.0
    with pytest.raises(ValueError, match=r"B\[0\] has a negative probability at index \(0, 1, 0\)"):
        validate_model(m)


def test_nan_in_a_model_is_named():
    m = model()
    m.A[0][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"A\[0\] holds NaN or inf"):
        validate_model(m)


def test_nan_in_a_posterior_names_the_array_and_step():
    t = gate.Trajectory(
        qs=np.ones((3, 2)),
        q_pi=np.array([[0.5, 0.5], [np.nan, 1.0], [0.5, 0.5]]),
        G=np.zeros((3, 2)),
        actions=np.zeros((3, 1), int),
        ties=np.zeros(3, bool),
    )
    with pytest.raises(FloatingPointError, match="numba: q_pi holds NaN or inf at gate step 1"):
        t.check_finite("numba")


def test_a_bad_model_writes_no_cell_file(tmp_path, monkeypatch, tiny_timing):
    study = get_study("inference")
    broken = model()
    broken.B[0][:, 0, 0] = 0.0
    monkeypatch.setattr(type(study), "build_model", lambda self, point, seed: broken)
    out = tmp_path / "standard.parquet"
    with pytest.raises(ValueError, match=r"B\[0\] is not normalised: column \(0, 0\) sums to 0"):
        cell.write_cell(
            out,
            study_name="inference",
            point=study.point(4, 3, 2, 1),
            variant="standard",
            master_seed=1,
            timing=tiny_timing,
        )
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("path", ["../outside.md", "/etc/passwd.md", "config/../../x.md"])
def test_model_path_escaping_the_project_is_refused_by_the_schema(path):
    cfg = {
        "seed": 1,
        "variants": ["standard"],
        "studies": {"inference": {"states": [4], "observations": [2], "actions": [2], "models": [path]}},
    }
    with pytest.raises(WorkflowError, match="does not match"):
        validate(cfg, str(ROOT / "workflow/schemas/config.schema.yaml"))


# --- cell identity ---------------------------------------------------------------------------

from pymdpbench import checks, results  # noqa: E402
from pymdpbench.engines import get_engine  # noqa: E402


def test_close_densities_and_learning_rates_get_distinct_cell_ids():
    memory = get_study("memory").points(
        {"states": [8], "densities": [0.1234567, 0.12345671], "actions": 2, "obs_per_state": 0.5}
    )
    assert len({p["cell"] for p in memory}) == 2
    assert [
        p["cell"]
        for p in get_study("memory").points({"states": [8], "densities": [0.05, 1], "actions": 2, "obs_per_state": 0.5})
    ] == ["s8-d0.05", "s8-d1"]
    shared = {
        "episodes": 2,
        "steps": 2,
        "runs": 1,
        "horizon": 1,
        "prior_concentration": 1.0,
        "pB_noise": 0.25,
        "reward_probability": 0.98,
    }
    learning = get_study("learning").points(
        {
            **shared,
            "configs": [{"lr": 0.1234567, "param_info_gain": False}, {"lr": 0.12345671, "param_info_gain": False}],
        }
    )
    assert len({p["cell"] for p in learning}) == 2


def test_gnn_files_of_one_name_in_two_folders_get_distinct_cell_ids():
    inference = get_study("inference")
    ids = [inference.named_point(m, 1)["cell"] for m in ("config/models/switch.md", "other/switch.md", "tmaze")]
    assert ids == ["m-gnn_switch-h1", "m-gnn_other_switch-h1", "m-env_tmaze-h1"]


def test_a_cell_id_collision_names_both_points():
    inference = get_study("inference")
    points = [inference.named_point("a/b_c.md", 1), inference.named_point("a_b/c.md", 1)]
    with pytest.raises(checks.ConfigError, match=r"cell id 'm-gnn_a_b_c-h1'.*'a/b_c.md'.*'a_b/c.md'"):
        checks.index_points("inference", points)


# --- config ----------------------------------------------------------------------------------


def test_duplicate_yaml_key_is_refused_naming_it(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 1\nstudies:\n  planning: {states: 4}\n  planning: {states: 8}\n")
    with pytest.raises(checks.ConfigError, match=r"c.yaml: key 'planning' is written twice \(lines 3 and 4\)"):
        checks.refuse_duplicate_keys([path])


@pytest.mark.parametrize(
    "key, value",
    [(["seed"], 7.0), (["studies", "inference", "states"], [4.0]), (["studies", "planning", "horizons"], [2.0])],
)
def test_float_where_an_integer_is_wanted_is_refused(key, value):
    cfg = {
        "seed": 1,
        "variants": ["standard"],
        "max_cells": 10,
        "max_policies": 10,
        "max_step_time_s": 1,
        "studies": {
            "inference": {"states": [4], "observations": [2], "actions": [2]},
            "planning": {"states": 4, "observations": 2, "actions": 2, "horizons": [1]},
        },
    }
    node = cfg
    for k in key[:-1]:
        node = node[k]
    node[key[-1]] = value
    validate(cfg, str(ROOT / "workflow/schemas/config.schema.yaml"))  # JSON Schema alone lets it through
    with pytest.raises(checks.ConfigError, match=r"is not an integer \(write \d\)"):
        checks.refuse_inexact_integers(cfg, str(ROOT / "workflow/schemas/config.schema.yaml"))


@pytest.mark.parametrize(
    "change, words",
    [
        ({"inference": {"states": [1], "observations": [2], "actions": [2]}}, ["minimum of 2", "one state"]),
        (
            {"learning": {"configs": [{"lr": 1e308, "param_info_gain": False}], "episodes": 1, "steps": 1}},
            ["maximum", "overflow"],
        ),
    ],
)
def test_sizes_and_rates_pymdp_cannot_run_are_refused_with_the_reason(change, words):
    cfg = {"seed": 1, "variants": ["standard"], "studies": change}
    with pytest.raises(WorkflowError) as err:
        validate(cfg, str(ROOT / "workflow/schemas/config.schema.yaml"))
    message = str(err.value.__cause__ or err.value)
    assert all(w in message for w in words), message


# --- engine outputs --------------------------------------------------------------------------

Standard = get_engine("standard")


class ShortQPi(Standard):
    def infer_policies(self):
        q_pi, G = super().infer_policies()
        return q_pi[:-1], G


class FractionalAction(Standard):
    def sample_action(self):
        return super().sample_action() + 0.9


@pytest.mark.parametrize(
    "engine, words",
    [(ShortQPi, "q_pi of shape (1,), expected (2,)"), (FractionalAction, "actions must be whole numbers")],
)
def test_engine_output_that_does_not_fit_the_model_is_refused(engine, words):
    m = random_model(4, [3], [2], [2])
    observations = gate.observation_sequence(1, m.num_obs, 3)
    with pytest.raises(gate.TrajectoryError) as err:
        gate.run_trajectory(engine(**m.agent_kwargs()), observations, 3)
    assert words in str(err.value) and "gate step 0" in str(err.value)


@pytest.mark.parametrize(
    "path, words",
    [
        ("os:system", "is a builtin_function_or_method, not an engine class"),
        ("no_such_module_xyz:Agent", "cannot import module 'no_such_module_xyz'"),
        ("pymdpbench.results:ResultError", "lacks supports, infer_states"),
        ("pymdpbench.engines.standard:Nope", "has no 'Nope'"),
    ],
)
def test_custom_variant_is_imported_and_checked_before_any_job(path, words):
    with pytest.raises(checks.ConfigError, match="custom_variants.x") as err:
        checks.check_custom_variants({"x": path})
    assert words in str(err.value)
    checks.check_custom_variants({"again": "pymdpbench.engines.standard:Agent"})


# --- references ------------------------------------------------------------------------------


def reference_file(tmp_path, owner="inference/s3-o2-a2-h1"):
    m = random_model(4, [3], [2], [2])
    trajectory = gate.run_trajectory(Standard(**m.agent_kwargs()), gate.observation_sequence(1, m.num_obs, 3), 3)
    path = tmp_path / "reference.npz"
    trajectory.save(path, owner)
    return path, trajectory


def test_corrupt_reference_is_named_with_what_to_do(tmp_path):
    path, _ = reference_file(tmp_path)
    path.write_text("garbage")
    with pytest.raises(gate.TrajectoryError, match=r"reference.npz: not a readable reference trajectory.*delete it"):
        gate.load_reference(path, "inference", "s3-o2-a2-h1")
    np.savez(path, x=np.array([object()], dtype=object))
    with pytest.raises(gate.TrajectoryError, match="not a readable reference"):
        gate.load_reference(path)


def test_reference_of_another_cell_or_shape_is_refused(tmp_path):
    path, trajectory = reference_file(tmp_path)
    with pytest.raises(gate.TrajectoryError, match="reference of inference/s3-o2-a2-h1, not of inference/s4-o2-a2-h1"):
        gate.load_reference(path, "inference", "s4-o2-a2-h1")
    loaded, _ = gate.load_reference(path, "inference", "s3-o2-a2-h1")
    with pytest.raises(gate.TrajectoryError, match=r"q_pi has shape \(3, 2\), the model needs \(3, 4\)"):
        loaded.check_shapes("ref", 3, [3], 4, 1)


def test_corrupt_references_are_removed_before_the_run(tmp_path):
    points = {"inference": {"s3-o2-a2-h1": {}, "s4-o2-a2-h1": {}}}
    good = tmp_path / "cells/inference/s3-o2-a2-h1"
    good.mkdir(parents=True)
    reference_file(good)
    bad = tmp_path / "cells/inference/s4-o2-a2-h1"
    bad.mkdir(parents=True)
    (bad / "reference.npz").write_bytes(b"PK\x03\x04 truncated")
    removed = checks.remove_corrupt_references(points, root=tmp_path, stream=None)
    assert list(removed) == [str(bad / "reference.npz")]
    assert (good / "reference.npz").exists() and not (bad / "reference.npz").exists()


# --- size guards -----------------------------------------------------------------------------

SIZED = {
    "seed": 1,
    "variants": ["standard"],
    "max_cells": 5000,
    "max_policies": 100000,
    "max_step_time_s": 60,
    "memory_cap_mb": 8000,
}


def test_too_many_cells_are_refused_before_the_dag_and_the_count_printed(capsys):
    cfg = {
        **SIZED,
        "max_cells": 100,
        "studies": {
            "inference": {
                "states": list(range(2, 302)),
                "observations": list(range(2, 302)),
                "actions": [2],
                "max_size_product": 10**9,
            }
        },
    }
    with pytest.raises(checks.ConfigError, match=r"more than 100 cells \(at least 90,000 so far"):
        checks.grid(cfg, ["standard"], get_study)
    cfg["max_cells"] = 5000
    cfg["studies"]["inference"].update(states=[2, 4], observations=[2])
    checks.grid(cfg, ["standard", "numba"], get_study)
    assert "4 cells (inference 2 points x 2 variants; max_cells 5,000)" in capsys.readouterr().err


def test_policy_tree_over_budget_is_refused_with_count_and_estimate():
    cfg = {**SIZED, "studies": {"planning": {"states": 8, "observations": 6, "actions": 4, "horizons": [2, 9]}}}
    with pytest.raises(checks.ConfigError, match=r"cell s8-o6-a4-h9: 262,144 policies of length 9, ~\d+ s per step"):
        checks.grid(cfg, ["standard"], get_study)


def test_a_study_emptied_by_its_cap_is_said_plainly():
    cfg = {
        **SIZED,
        "studies": {"inference": {"states": [64], "observations": [8], "actions": [4], "max_size_product": 10}},
    }
    with pytest.raises(checks.ConfigError, match="studies.inference: no grid point left: every states x obs"):
        checks.grid(cfg, ["standard"], get_study)


def test_figures_and_tables_of_a_study_whose_cells_were_all_skipped_say_so(tmp_path):
    from pymdpbench import figures, tables

    rows = [
        {
            "study": "planning",
            "cell": "s4-o2-a2-h1",
            "variant": v,
            "status": "skipped",
            "reason": "too big",
            "p_states": 4,
            "p_obs": 2,
            "p_actions": 2,
            "p_horizon": 1,
            "seed": 1,
            "model": "random",
        }
        for v in ("standard", "numba")
    ]
    path = tmp_path / "planning.parquet"
    results.write_rows(rows, path, {})
    for name in get_study("planning").figures:
        figures.render(name, path, [tmp_path / f"{name}.png"])
        assert (tmp_path / f"{name}.png").stat().st_size > 0
    tables.write_tables(path, tmp_path / "t.md", tmp_path / "t.tex")
    assert "No measured cells: all 2 cells of this study were skipped" in (tmp_path / "t.md").read_text()


def test_a_gnn_file_is_parsed_once_per_process(monkeypatch):
    from pymdpbench import named

    calls = []
    real = named.read_gnn
    monkeypatch.setattr(named, "read_gnn", lambda path: calls.append(path) or real(path))
    monkeypatch.setattr(named, "_GNN_CACHE", {})
    study = get_study("inference")
    point = study.named_point("config/models/switch.md", 1)
    monkeypatch.chdir(ROOT)
    study.row_parameters(point), study.options(point), study.model_entries(point)
    model = study.build_model(point, 0)
    model.A[0][:] = 0.0  # an agent editing its model does not change the next caller's
    assert np.all(study.build_model(point, 0).A[0].sum(axis=0) > 0)
    assert len(calls) == 1


# --- leftovers -------------------------------------------------------------------------------


def test_temporary_files_of_killed_writes_are_cleaned(tmp_path):
    import os
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    folder = tmp_path / "figures/inference"
    folder.mkdir(parents=True)
    leftovers = [
        folder / f".tmp.{dead}.speedup.pdf",
        tmp_path / f".inference.parquet.tmp.{dead}",
        tmp_path / f"reference.npz.tmp.{dead}.npz",
    ]
    live = tmp_path / f".planning.parquet.tmp.{os.getpid()}"
    recent = tmp_path / f".memory.parquet.tmp.{dead}"
    for path in [*leftovers, live, recent, tmp_path / "tmp.parquet"]:
        path.write_bytes(b"")
    for path in [*leftovers, live]:
        os.utime(path, (1, 1))
    removed = checks.clean_leftovers(tmp_path, stream=None)
    assert sorted(removed) == sorted(map(str, leftovers))
    assert live.exists() and recent.exists() and (tmp_path / "tmp.parquet").exists()


def test_threads_the_cells_used_are_summarised_for_the_manifest(tmp_path):
    path = tmp_path / "batch.parquet"
    results.write_rows(
        [
            {"study": "batch", "cell": "c", "variant": "standard", "threads": t, "blas_threads": b}
            for t, b in ((1, "openblas=1"), (2, "openblas=2"), (1, "openblas=1"))
        ],
        path,
        {},
    )
    assert results.threads_used([path]) == {"batch": {"threads": [1, 2], "blas_threads": ["openblas=1", "openblas=2"]}}
