"""Planning horizon: infer_states + infer_policies as the number of policies grows as actions^H.

Each horizon is measured for each of pymdp's planning schemes listed under ``algorithms``:
``vanilla`` (state inference at the current step, ``policy_len = H``), ``mmp`` (marginal message
passing over the last ``inference_horizon`` steps, ``inference_algo="MMP"``, ``policy_len = H``) and
``sophisticated`` (``sophisticated=True``: a tree search of depth ``si_horizon = H`` over one-step
policies). Cell ids carry the scheme after the horizon (``s8-o6-a4-h2-mmp``); vanilla's have none.
"""

from pymdpbench.studies.base import SizeGrid

#: cell-id suffix of each scheme
SUFFIX = {"vanilla": "", "mmp": "-mmp", "sophisticated": "-si"}


class Planning(SizeGrid):
    name = "planning"
    figures = ["horizon", "speedup", "deviation"]

    def points(self, settings):
        sized = [
            self.point(settings["states"], settings["observations"], settings["actions"], h)
            for h in settings["horizons"]
        ]
        points = sized + self.named_points(settings, settings["horizons"])
        algorithms = settings.get("algorithms", ["vanilla"])
        return [
            {
                **p,
                "cell": p["cell"] + SUFFIX[algo],
                "algorithm": algo,
                "inference_horizon": settings.get("inference_horizon", 2),
            }
            for algo in algorithms
            for p in points
        ]

    def row_parameters(self, point):
        return {**super().row_parameters(point), "p_algorithm": point.get("algorithm", "vanilla")}

    def options(self, point):
        return {**super().options(point), **self.agent_options(point)}

    def agent_options(self, point):
        """policy_len H (vanilla, MMP) or a depth-H search over one-step policies (sophisticated)."""
        horizon = point.get("horizon", 1)
        algorithm = point.get("algorithm", "vanilla")
        if algorithm == "mmp":
            return {"policy_len": horizon, "inference_algo": "MMP", "inference_horizon": point["inference_horizon"]}
        if algorithm == "sophisticated":
            return {"policy_len": 1, "sophisticated": True, "si_horizon": horizon}
        return {"policy_len": horizon}

    def policy_count(self, point):
        """Policies per step; a sophisticated search of depth H is counted like H-step policies."""
        if point.get("algorithm") == "sophisticated":
            return super().policy_count({**point, "algorithm": "vanilla"})
        return super().policy_count(point)

    def step(self, agent, obs):
        """No action is sampled: the empirical prior keeps using the last gate step's action."""
        agent.infer_states(obs)
        agent.infer_policies()
