"""Planning horizon: infer_states + infer_policies as the number of policies grows as actions^H."""

from pymdpbench.studies.base import SizeGrid


class Planning(SizeGrid):
    name = "planning"
    figures = ["horizon", "speedup", "deviation"]

    def points(self, settings):
        sized = [self.point(settings["states"], settings["observations"], settings["actions"], h)
                 for h in settings["horizons"]]
        return sized + self.named_points(settings, settings["horizons"])

    def step(self, agent, obs):
        """No action is sampled: the empirical prior keeps using the last gate step's action."""
        agent.infer_states(obs)
        agent.infer_policies()
