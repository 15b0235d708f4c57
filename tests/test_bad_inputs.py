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
    t = gate.Trajectory(qs=np.ones((3, 2)), q_pi=np.array([[0.5, 0.5], [np.nan, 1.0], [0.5, 0.5]]),
                        G=np.zeros((3, 2)), actions=np.zeros((3, 1), int), ties=np.zeros(3, bool))
    with pytest.raises(FloatingPointError, match="numba: q_pi holds NaN or inf at gate step 1"):
        t.check_finite("numba")


def test_a_bad_model_writes_no_cell_file(tmp_path, monkeypatch, tiny_timing):
    study = get_study("inference")
    broken = model()
    broken.B[0][:, 0, 0] = 0.0
    monkeypatch.setattr(type(study), "build_model", lambda self, point, seed: broken)
    out = tmp_path / "standard.parquet"
    with pytest.raises(ValueError, match=r"B\[0\] is not normalised: column \(0, 0\) sums to 0"):
        cell.write_cell(out, study_name="inference", point=study.point(4, 3, 2, 1), variant="standard",
                        master_seed=1, timing=tiny_timing)
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("path", ["../outside.md", "/etc/passwd.md", "config/../../x.md"])
def test_model_path_escaping_the_project_is_refused_by_the_schema(path):
    cfg = {"seed": 1, "variants": ["standard"],
           "studies": {"inference": {"states": [4], "observations": [2], "actions": [2], "models": [path]}}}
    with pytest.raises(WorkflowError, match="does not match"):
        validate(cfg, str(ROOT / "workflow/schemas/config.schema.yaml"))
