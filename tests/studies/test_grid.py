"""Grid expansion of the size studies and the size guard."""

import pytest

from pymdpbench.studies import get_study


def test_inference_grid_is_the_full_product():
    points = get_study("inference").points(
        {"states": [4, 8, 16], "observations": [2, 3], "actions": [2, 4], "max_size_product": 10**9}
    )
    assert len(points) == 12
    cells = {p["cell"] for p in points}
    assert len(cells) == 12
    assert "s16-o3-a4-h1" in cells


def test_inference_size_guard_leaves_out_large_points():
    points = get_study("inference").points(
        {"states": [4, 64, 1024], "observations": [8], "actions": [4], "max_size_product": 64 * 8 * 4}
    )
    assert [p["states"] for p in points] == [4, 64]


def test_planning_grid_over_horizons():
    points = get_study("planning").points({"states": 8, "observations": 6, "actions": 4, "horizons": [1, 3]})
    assert [p["cell"] for p in points] == ["s8-o6-a4-h1", "s8-o6-a4-h3"]


def test_unknown_study_is_named():
    with pytest.raises(KeyError, match="colouring"):
        get_study("colouring")


def test_model_entries_match_the_built_model():
    study = get_study("inference")
    point = study.point(16, 8, 4, 1)
    entries, density = study.model_entries(point)
    model = study.build_model(point, seed=3)
    assert entries * 8 == model.nbytes
    assert density == 1.0


def test_policy_count_of_every_study_matches_its_options():
    """The size guard's count; learning's is known without building the T-maze."""
    from pymdpbench.checks import policy_count

    learning = get_study("learning")
    point = learning.points(
        {
            "configs": [{"lr": 0.1, "param_info_gain": True}],
            "episodes": 2,
            "steps": 2,
            "runs": 1,
            "horizon": 2,
            "prior_concentration": 1.0,
            "pB_noise": 0.25,
            "reward_probability": 0.98,
        }
    )[0]
    assert learning.policy_count(point) == policy_count(learning.options(point)) == 16
    planning = get_study("planning")
    assert planning.policy_count(planning.point(8, 6, 4, 3)) == 64
