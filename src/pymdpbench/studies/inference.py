"""Inference scaling: time per step across states x observations x actions, horizon 1.

The guide times ``infer_states`` + ``sample_action``; in pymdp ``sample_action`` needs the policy
posterior, so the timed step is the agent's whole step: infer_states, infer_policies, sample_action.
"""

import itertools

from pymdpbench.studies.base import SizeGrid


class Inference(SizeGrid):
    name = "inference"
    figures = ["scaling", "speedup", "speedup_heatmap", "deviation"]

    def points(self, settings):
        """The grid, minus points whose states x observations x actions exceeds ``max_size_product``,
        plus each named model."""
        grid = itertools.product(settings["states"], settings["observations"], settings["actions"])
        sized = [self.point(s, o, a, 1) for s, o, a in grid if s * o * a <= settings["max_size_product"]]
        return sized + self.named_points(settings, [1])

    def empty_reason(self, settings):
        return (
            f"every states x observations x actions is above max_size_product {settings['max_size_product']:,} "
            "(raise it or add smaller sizes)"
        )
