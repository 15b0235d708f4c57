"""Named models: pymdp's environments and project GNN files, each run through the legacy Agent."""

from pathlib import Path

import numpy as np
import pytest

from pymdpbench.gnn import GNNError
from pymdpbench.named import NAMED_MODELS, build_gridworld, load_named_model, resolve_model_path

ROOT = Path(__file__).resolve().parents[1]


def run_steps(model, steps=3):
    """infer_states, infer_policies, sample_action for a few steps, feeding back observation 0."""
    from pymdpbench.engines.standard import Agent

    agent = Agent(**model.agent_kwargs())
    for _ in range(steps):
        qs = agent.infer_states([0] * len(model.A))
        q_pi, G = agent.infer_policies()
        action = agent.sample_action()
    return qs, q_pi, G, action


@pytest.mark.parametrize("name", sorted(NAMED_MODELS))
def test_named_model_runs_in_the_legacy_agent(name):
    model = load_named_model(name)
    assert model.name == name
    qs, q_pi, G, action = run_steps(model)
    assert [q.shape for q in qs] == [(n,) for n in model.num_states]
    np.testing.assert_allclose(q_pi.sum(), 1.0)
    assert action.shape == (len(model.B),)


@pytest.mark.parametrize("name", sorted(NAMED_MODELS))
def test_building_leaves_the_global_random_state_alone(name):
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    load_named_model(name)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_tmaze_is_pymdps_environment():
    from pymdp.legacy.envs import TMazeEnv

    model = load_named_model("tmaze")
    env = TMazeEnv()
    assert model.num_states == [4, 2] and model.num_obs == [4, 3, 2] and model.num_controls == [4, 1]
    for ours, theirs in zip(model.A, env.get_likelihood_dist()):
        np.testing.assert_array_equal(ours, theirs)
    for ours, theirs in zip(model.B, env.get_transition_dist()):
        np.testing.assert_array_equal(ours, theirs)
    assert model.C[1].argmax() == 1 and model.C[1].argmin() == 2  # reward preferred, loss avoided
    np.testing.assert_array_equal(model.D[0], [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(model.D[1], [0.5, 0.5])


def test_tmaze_agent_visits_the_cue_first():
    _, _, _, action = run_steps(load_named_model("tmaze"), steps=1)
    assert action[0] == 3


def test_gridworld():
    model = load_named_model("gridworld")
    assert model.num_states == [9] and model.num_obs == [9] and model.num_controls == [5]
    np.testing.assert_array_equal(model.A[0], np.eye(9))
    assert model.B[0][1, 0, 1] == 1.0  # RIGHT from the top-left cell
    assert model.B[0][3, 0, 2] == 1.0  # DOWN from the top-left cell
    assert model.B[0][0, 0, 0] == 1.0  # UP at the top edge stays
    assert model.C[0].argmax() == 8
    np.testing.assert_array_equal(model.D[0], np.eye(9)[0])


def test_gridworld_agent_walks_towards_the_goal():
    from pymdpbench.engines.standard import Agent

    model = build_gridworld(shape=(1, 3), start=1, goal=2)
    agent = Agent(**model.agent_kwargs())
    agent.infer_states([1])
    agent.infer_policies()
    assert agent.sample_action()[0] == 1  # RIGHT


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="unknown model 'maze'.*'gridworld'.*'tmaze'"):
        load_named_model("maze")


@pytest.mark.parametrize("path", ["config/models/tmaze.md", "./config/models/../models/switch.md"])
def test_gnn_path_inside_the_project(path):
    model = load_named_model(path, project_root=ROOT)
    assert model.meta["source"].startswith(str(ROOT))
    run_steps(model, steps=1)


def test_absolute_path_inside_the_project_is_accepted():
    model = load_named_model(str(ROOT / "config" / "models" / "switch.md"), project_root=ROOT)
    assert model.name == "switch"


def test_default_root_is_the_working_directory(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert load_named_model("config/models/switch.md").name == "switch"


@pytest.mark.parametrize("path", ["../outside.md", "config/../../outside.md"])
def test_dot_dot_escape_is_refused(tmp_path, path):
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    (tmp_path / "outside.md").write_text("## GNNSection\n")
    with pytest.raises(ValueError, match="outside the project directory"):
        load_named_model(path, project_root=project)


def test_absolute_path_outside_is_refused(tmp_path):
    outside = tmp_path / "elsewhere.md"
    outside.write_text("## GNNSection\n")
    with pytest.raises(ValueError, match="outside the project directory"):
        load_named_model(str(outside), project_root=ROOT)


def test_symlink_out_of_the_project_is_refused(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "outside.md").write_text("## GNNSection\n")
    (project / "link.md").symlink_to(tmp_path / "outside.md")
    with pytest.raises(ValueError, match="outside the project directory"):
        resolve_model_path("link.md", project_root=project)


def test_broken_gnn_file_through_the_loader():
    with pytest.raises(GNNError, match="## Connections"):
        load_named_model("tests/fixtures/gnn/missing_section.md", project_root=ROOT)
