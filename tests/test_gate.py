"""The correctness gate: exact ties broken at random are not differences; everything else is."""

import numpy as np

from pymdpbench import gate
from pymdpbench.engines import get_engine
from pymdpbench.models import random_model


def tied_model():
    """All three actions have identical transitions: every choice is an exact three-way tie."""
    model = random_model(5, [4], [3], [3], name="tied")
    model.B[0][:, :, 1] = model.B[0][:, :, 2] = model.B[0][:, :, 0]
    return model


class FirstOfTies(get_engine("numba")):
    """Picks the first of tied actions (argmax), as pymdp's JAX agent does, instead of drawing."""

    def sample_action(self):
        marginal = gate.action_marginals(np.asarray(self.q_pi, float), np.asarray(self.policies), self.num_controls)[0]
        self.action = np.array([float(np.argmax(marginal))])
        return self.action


def test_reference_marks_tied_steps_and_ties_are_not_counted():
    model = tied_model()
    observations = gate.observation_sequence(1, model.num_obs, 12)
    reference = gate.run_trajectory(get_engine("standard")(**model.agent_kwargs()), observations, 3)
    other = gate.run_trajectory(FirstOfTies(**model.agent_kwargs()), observations, 3, forced_actions=reference.actions)
    raw = np.any(other.actions != reference.actions, axis=1)
    assert reference.ties.any()
    assert raw.any(), "the random tie-break must have picked another action at least once"
    assert not raw[~reference.ties].any()
    assert gate.deviation(reference, other)["n_action_diff"] == 0


def test_a_different_action_without_a_tie_is_counted():
    model = random_model(6, [4], [3], [3])
    observations = gate.observation_sequence(2, model.num_obs, 6)
    reference = gate.run_trajectory(get_engine("standard")(**model.agent_kwargs()), observations, 3)
    assert not reference.ties.any()
    other = gate.Trajectory(reference.qs, reference.q_pi, reference.G, (reference.actions + 1) % 3, reference.ties)
    dev = gate.deviation(reference, other)
    assert dev["n_action_diff"] == len(observations)
    assert not gate.passes(dev, 1e-10)


def test_reference_roundtrip_keeps_ties(tmp_path):
    model = tied_model()
    observations = gate.observation_sequence(1, model.num_obs, 4)
    reference = gate.run_trajectory(get_engine("standard")(**model.agent_kwargs()), observations, 3)
    reference.save(tmp_path / "ref.npz")
    loaded, absent = gate.load_reference(tmp_path / "ref.npz")
    assert absent == "" and np.array_equal(loaded.ties, reference.ties)
