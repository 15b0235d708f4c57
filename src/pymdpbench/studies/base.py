"""The study protocol, and the grid of one-factor random models most studies share."""

from pymdpbench.models import random_model


class Study:
    """What a cell asks of a study."""

    name = ""

    def points(self, settings):
        """The grid points of this study's config section; each a dict with a readable "cell" id."""
        raise NotImplementedError

    def row_parameters(self, point):
        """The p_* columns of a row."""
        raise NotImplementedError

    def options(self, point):
        """What an engine's ``supports(options)`` is asked about."""
        raise NotImplementedError

    def model_entries(self, point):
        """(entries of A and B, share of non-zeros), for the resource guard before anything is built."""
        raise NotImplementedError

    def build_model(self, point, seed):
        raise NotImplementedError

    def agent_options(self, point):
        """Agent keywords beyond the model's own (policy_len, ...)."""
        return {"policy_len": point.get("horizon", 1)}

    def step(self, agent, obs):
        """The timed operation: one step of the agent on observation ``obs``."""
        raise NotImplementedError


class SizeGrid(Study):
    """Seeded random models with one factor and one modality, sized by states, outcomes, actions, horizon."""

    @staticmethod
    def point(states, obs, actions, horizon):
        return {"cell": f"s{states}-o{obs}-a{actions}-h{horizon}", "states": states, "obs": obs,
                "actions": actions, "horizon": horizon}

    def row_parameters(self, point):
        return {"p_states": point["states"], "p_obs": point["obs"], "p_actions": point["actions"],
                "p_horizon": point["horizon"], "p_factors": 1, "p_modalities": 1}

    def options(self, point):
        return {"num_states": [point["states"]], "num_obs": [point["obs"]],
                "num_controls": [point["actions"]], "policy_len": point["horizon"]}

    def model_entries(self, point):
        s = point["states"]
        return point["obs"] * s + s * s * point["actions"], 1.0

    def build_model(self, point, seed):
        return random_model(seed, [point["states"]], [point["obs"]], [point["actions"]], name="random")
