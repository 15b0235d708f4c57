"""The learning study: grid, convergence measure, a cell with the standard agent, and that the
T-maze learner really learns."""

import numpy as np
import pytest

from pymdpbench import cell, figures, results, tables
from pymdpbench.engines import get_engine
from pymdpbench.studies import get_study
from pymdpbench.studies.learning import episodes_to_converge, final_goal_rate, play

SETTINGS = {
    "configs": [{"lr": 0.05, "param_info_gain": False}, {"lr": 0.1, "param_info_gain": True}],
    "episodes": 3,
    "steps": 3,
    "runs": 2,
    "horizon": 1,
    "prior_concentration": 1.0,
    "pB_noise": 0.25,
    "reward_probability": 0.98,
}


def test_points_name_rate_info_gain_and_episodes():
    points = get_study("learning").points(SETTINGS)
    assert [p["cell"] for p in points] == ["lr0.05-pig0-e3x3", "lr0.1-pig1-e3x3"]
    assert points[1]["param_info_gain"] and points[1]["lr"] == 0.1


def test_options_tell_engines_about_learning():
    study = get_study("learning")
    options = study.options(study.points(SETTINGS)[1])
    assert options["learning"] and options["use_param_info_gain"]
    assert options["lr_pA"] == options["lr_pB"] == 0.1
    assert 0 < options["density"] < 1  # the T-maze's pA and pB hold zeros


def test_prior_does_not_know_which_arm_pays():
    study = get_study("learning")
    model = study.build_model(study.points(SETTINGS)[0], 0)
    reward = model.pA[1] / model.pA[1].sum(axis=0)
    np.testing.assert_allclose(reward[1:, 1:3], 0.5)  # reward and loss equally likely in both arms
    assert np.all(model.A[1][0, 1:3] == 0)  # the known zeros stay
    assert np.all(model.pB[0] > 0) and not np.allclose(model.pB[0] / model.pB[0].sum(axis=0), model.B[0])


@pytest.mark.parametrize(
    "rates, window, expected",
    [
        (
            [0, 0, 0, 1, 1, 1, 1, 1, 1, 1],
            3,
            6,
        ),  # rolling means 0, 1/3, 2/3, 1, ...: first within 0.1 of 1 ends at episode 6
        ([1, 1, 1, 1], 2, 2),  # converged from the first full window
        ([0, 1, 0, 1, 0, 1], 2, 2),  # rolling means all 0.5
        ([0.2, 0.4], 5, 2),  # shorter than the window: one window, its last episode
    ],
)
def test_episodes_to_converge_by_hand(rates, window, expected):
    assert episodes_to_converge(rates, window=window, tolerance=0.1) == expected


def test_final_goal_rate_is_the_mean_of_the_last_window():
    assert final_goal_rate([0, 0, 1, 1, 0.5], window=2) == 0.75


def test_standard_cell_has_learning_curves(tiny_timing, tmp_path):
    point = get_study("learning").points(SETTINGS)[1]
    row = cell.run_cell("learning", point, "standard", 4, tiny_timing)
    assert row["status"] == "ok" and row["gate_pass"]
    assert row["model"] == "tmaze" and row["p_lr"] == 0.1 and row["p_param_info_gain"]
    for column in ("episode_goal_rate", "episode_reward", "episode_step_time_s"):
        assert len(row[column]) == 3
    assert all(t > 0 for t in row["episode_step_time_s"])
    assert 1 <= row["episodes_to_converge"] <= 3
    again = cell.run_cell("learning", point, "standard", 4, tiny_timing)
    assert again["episode_reward"] == row["episode_reward"]  # seeded: the same path every time
    path = tmp_path / "learning.parquet"
    results.write_rows([row], path, {})
    assert "Learning on the T-maze" in tables.markdown(tables.load(path))
    figures.render("learning_curve", path, [tmp_path / "curve.png"])
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_learning_raises_the_goal_rate():
    """Over 14 episodes the learner finds the paying arm: the goal rate of the last 5 episodes
    exceeds that of the first 5 by a wide margin (it starts with no idea which arm pays)."""
    study = get_study("learning")
    point = study.points({**SETTINGS, "episodes": 14, "steps": 4, "runs": 3})[0]
    model = study.build_model(point, 0)
    kwargs = {**model.agent_kwargs(), **study.agent_options(point)}
    rewards = np.array([play(get_engine("standard"), kwargs, point, seed)[0] for seed in range(3)])
    goal_rate = (rewards > 0).mean(axis=0)
    assert goal_rate[-5:].mean() >= goal_rate[:5].mean() + 0.3, goal_rate
    assert goal_rate[-5:].mean() >= 0.6, goal_rate


def test_model_entries_match_the_built_model():
    study = get_study("learning")
    point = study.points(SETTINGS)[0]
    assert study.model_entries(point)[0] * 8 == study.build_model(point, 0).nbytes
