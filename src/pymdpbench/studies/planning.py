"""Planning horizon: infer_states + infer_policies as the number of policies grows as actions^H."""

from pymdpbench.studies.base import SizeGrid


class Planning(SizeGrid):
    name = "planning"

    def points(self, settings):
        return [self.point(settings["states"], settings["observations"], settings["actions"], h)
                for h in settings["horizons"]]

    def step(self, agent, obs):
        """No action is sampled: the empirical prior keeps using the last gate step's action."""
        agent.infer_states(obs)
        agent.infer_policies()
