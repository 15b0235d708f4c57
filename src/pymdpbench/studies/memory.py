"""Memory: what each variant holds for the same model, across sizes and shares of non-zeros.

Grid: hidden states x density (share of A and B entries drawn non-zero), with outcomes a fixed
ratio of the states and a fixed number of actions; cell ids ``s256-d0.05``. Every variant of a
point gets the same seeded random model (``models.random_model`` with ``density``; every column
keeps its largest entry, so no column is empty). The cell records what the study is about:
``model_bytes`` (A and B as the engine holds them: dense float64, dense float32, or CSR/CSC data
plus indices), the tracemalloc peak and the RSS peak of a few steps.

The resource guard needs the share of non-zeros before anything is built: ``model_entries``
returns its expectation, ``d + (1 - d) / n`` for a column of ``n`` entries (each entry survives
with probability ``d``, and the largest one always does). A cell whose variant would hold more
than the cap is skipped with the reason; the cap is the run's ``memory_cap_mb`` or, tighter, this
study's own ``memory_cap_mb``, so that a short run still shows where each variant stops. The
largest model each variant holds is then the largest ``p_states`` with status ok
(``tables.largest_models``).

``structured_states`` adds models built directly sparse (``models.sparse_model``: each action's B a
permutation, ``nnz_per_column`` non-zeros per A column; cell ids ``s16384-k4``), which only the
sparse variant runs: they are the models dense engines cannot hold (16,384 states would need
8.6 GB dense). Their correctness rests on the sparse engine's own tests against pymdp on the
same generator at small sizes; in the study their gate columns stay null ("no reference").

The density-grid model is drawn dense (pymdp's reference agent takes dense arrays) and handed to every
variant, which converts it to its own form; the cell's RSS therefore includes the dense model
for every variant, while ``model_bytes`` and the tracemalloc peak are the variant's own. Where the
standard variant is skipped by the cap, the point has no reference trajectory: the other
variants still run and record ``gate_pass`` null with the reason.
"""

import math

from pymdpbench.engines import traits
from pymdpbench.models import random_model, sparse_model
from pymdpbench.studies.base import SizeGrid, exact_number


def kept_share(density, column_length):
    """Expected share of non-zeros in a column of ``column_length`` entries drawn at ``density``."""
    if density >= 1.0:
        return 1.0
    return density + (1.0 - density) / column_length


class Memory(SizeGrid):
    name = "memory"
    figures = ["model_bytes", "traced_peak", "rss_peak"]

    def points(self, settings):
        """states x densities; outcomes = ceil(states * obs_per_state); one action count; horizon 1."""
        cap = settings.get("memory_cap_mb")
        points = []
        for states in settings["states"]:
            for density in settings["densities"]:
                point = {
                    "cell": f"s{states}-d{exact_number(density)}",
                    "states": states,
                    "obs": max(1, math.ceil(states * settings["obs_per_state"])),
                    "actions": settings["actions"],
                    "horizon": 1,
                    "density": float(density),
                }
                if cap is not None:
                    point["memory_cap_mb"] = cap
                points.append(point)
        k = settings.get("nnz_per_column", 4)
        for states in settings.get("structured_states", []):
            points.append(
                {
                    "cell": f"s{states}-k{k}",
                    "states": states,
                    "obs": states,
                    "actions": settings["actions"],
                    "horizon": 1,
                    "density": None,
                    "nnz_per_column": k,
                }
            )
        return points

    def density(self, point):
        """The drawn density, or for a structured model its share of non-zeros."""
        return point["density"] if point["density"] is not None else self.model_entries(point)[1]

    def row_parameters(self, point):
        return {**super().row_parameters(point), "p_density": self.density(point)}

    def options(self, point):
        return {**super().options(point), "density": self.density(point)}

    def model_entries(self, point):
        """(entries of A and B, expected share of non-zeros over both)."""
        s, o, d = point["states"], point["obs"], point["density"]
        a_entries, b_entries = o * s, s * s * point["actions"]
        if d is None:  # structured: k per A column, one per B column and action
            return a_entries + b_entries, (s * point["nnz_per_column"] + s * point["actions"]) / (a_entries + b_entries)
        share = (a_entries * kept_share(d, o) + b_entries * kept_share(d, s)) / (a_entries + b_entries)
        return a_entries + b_entries, share

    def supports(self, point, variant):
        """The study's own cap, with the same estimate as the run's resource guard."""
        from pymdpbench.resources import estimated_bytes

        if point["density"] is None and traits(variant).storage != "sparse":
            return False, "structured sparse model: built sparse, for engines that store sparse matrices only"
        cap_mb = point.get("memory_cap_mb")
        needed = estimated_bytes(self, point, variant)
        if cap_mb is not None and needed > cap_mb * 2**20:
            return False, f"model needs ~{needed / 2**20:.3g} MiB > memory study cap {cap_mb:g} MiB"
        return True, ""

    def build_model(self, point, seed):
        if point["density"] is None:
            return sparse_model(seed, point["states"], point["obs"], point["actions"], point["nnz_per_column"])
        return random_model(
            seed, [point["states"]], [point["obs"]], [point["actions"]], density=point["density"], name="random"
        )
