"""Inference scaling: time per step across states x observations x actions, horizon 1.

The guide times ``infer_states`` + ``sample_action``; in pymdp ``sample_action`` needs the policy
posterior, so the timed step is the agent's whole step: infer_states, infer_policies, sample_action.
"""

import itertools

from pymdpbench.studies.base import SizeGrid


class Inference(SizeGrid):
    name = "inference"

    def points(self, settings):
        """The grid, minus points whose states x observations x actions exceeds ``max_size_product``."""
        grid = itertools.product(settings["states"], settings["observations"], settings["actions"])
        return [self.point(s, o, a, 1) for s, o, a in grid if s * o * a <= settings["max_size_product"]]

    def step(self, agent, obs):
        agent.infer_states(obs)
        agent.infer_policies()
        agent.sample_action()
