"""The study protocol, and the grid of one-factor random models most studies share."""

import re

import numpy as np

from pymdpbench.models import random_model

#: the folder of the project's GNN files, left out of their cell ids (``m-gnn_tmaze-h1``)
MODELS_FOLDER = "config/models/"


def exact_number(value):
    """A number as a cell id writes it: short (``0.05``, ``1``) where that reads back as the same
    value, else Python's shortest exact form (``0.12345671``), so distinct values never share an id."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


def model_slug(model):
    """A named model's part of a cell id: the registered name, or the GNN file's path (without
    ``config/models/`` and ``.md``) with every other character run written ``_``; files of one name in
    different folders get different ids (``m-gnn_switch``, ``m-gnn_other_switch``)."""
    path = model.removeprefix("./").removeprefix(MODELS_FOLDER).removesuffix(".md")
    return re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_")


def model_parameters(model, horizon, name):
    """The row parameters of a cell on a named model: its joint sizes, factors and modalities."""
    return {
        "p_states": int(np.prod(model.num_states)),
        "p_obs": int(np.prod(model.num_obs)),
        "p_actions": int(np.prod(model.num_controls)),
        "p_horizon": horizon,
        "p_factors": len(model.num_states),
        "p_modalities": len(model.num_obs),
        "model": name,
    }


class Study:
    """What a cell asks of a study. Subclasses fill in the grid, the model and the timed step."""

    name = ""
    #: figures rendered from the merged table (names in pymdpbench.figures.FIGURES)
    figures = ["speedup", "deviation"]
    #: rows each cell file holds (the merge refuses a file with another number)
    rows_per_cell = 1
    #: learning order replayed by the correctness gate: None, "pre" or "post" (see gate.run_trajectory)
    gate_learning = None

    def points(self, settings):
        """The grid points of this study's config section; each a dict with a readable "cell" id."""
        raise NotImplementedError

    def row_parameters(self, point):
        """The p_* columns of a row."""
        raise NotImplementedError

    def options(self, point):
        """What an engine's ``supports(options)`` is asked about."""
        raise NotImplementedError

    def empty_reason(self, settings):
        """Why ``points(settings)`` is empty, for the message that refuses such a config."""
        return "its settings list no grid point"

    def policy_count(self, point):
        """Policies the reference agent evaluates per step at ``point`` (the size guard's count)."""
        from pymdpbench.checks import policy_count

        return policy_count(self.options(point))

    def supports(self, point, variant):
        """(False, reason) when this study cannot measure ``variant`` at ``point`` (its own memory cap,
        a mode only some engines have); asked before the engine is imported, so such a cell is cheap."""
        return True, ""

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
        agent.infer_states(obs)
        agent.infer_policies()
        agent.sample_action()

    def measure(self, Agent, kwargs, point, seed, timing):
        """Study-specific columns measured after the common timing (learning curves, throughput ...)."""
        return {}


def _model_options(model, horizon):
    return {
        "num_states": model.num_states,
        "num_obs": model.num_obs,
        "num_controls": model.num_controls,
        "policy_len": horizon,
        "A_factor_list": model.A_factor_list,
        "B_factor_list": model.B_factor_list,
    }


class SizeGrid(Study):
    """Seeded random models with one factor and one modality, sized by states, outcomes, actions,
    horizon — and named real models (GNN files, pymdp environments) on the same axis, with cell
    ids ``m-<name>-h<H>``."""

    @staticmethod
    def point(states, obs, actions, horizon):
        return {
            "cell": f"s{states}-o{obs}-a{actions}-h{horizon}",
            "states": states,
            "obs": obs,
            "actions": actions,
            "horizon": horizon,
        }

    @staticmethod
    def named_point(model, horizon):
        kind = "gnn" if model.endswith(".md") else "env"
        return {"cell": f"m-{kind}_{model_slug(model)}-h{horizon}", "model": model, "horizon": horizon}

    def named_points(self, settings, horizons):
        return [self.named_point(m, h) for m in settings.get("models", []) for h in horizons]

    def _named(self, point):
        from pymdpbench.named import load_named_model

        return load_named_model(point["model"])

    def row_parameters(self, point):
        if "model" in point:
            return model_parameters(self._named(point), point["horizon"], point["model"])
        return {
            "p_states": point["states"],
            "p_obs": point["obs"],
            "p_actions": point["actions"],
            "p_horizon": point["horizon"],
            "p_factors": 1,
            "p_modalities": 1,
            "model": "random",
        }

    def options(self, point):
        if "model" in point:
            return _model_options(self._named(point), point["horizon"])
        return {
            "num_states": [point["states"]],
            "num_obs": [point["obs"]],
            "num_controls": [point["actions"]],
            "policy_len": point["horizon"],
            "A_factor_list": None,
            "B_factor_list": None,
        }

    def model_entries(self, point):
        if "model" in point:
            model = self._named(point)
            return model.nbytes // 8, 1.0
        s = point["states"]
        return point["obs"] * s + s * s * point["actions"], 1.0

    def build_model(self, point, seed):
        if "model" in point:
            return self._named(point)
        return random_model(seed, [point["states"]], [point["obs"]], [point["actions"]], name="random")
