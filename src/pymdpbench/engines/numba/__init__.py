"""The numba engine: pymdp's legacy Agent (a subclass) whose inference, planning and action
selection run in compiled kernels (:mod:`.agent` the facade, :mod:`.kernels` the kernels)."""

from pymdpbench.engines.numba.agent import Agent


def warmup():
    """Compile the float64 kernels; seconds taken (see :meth:`Agent.warmup`)."""
    return Agent.warmup()


__all__ = ["Agent", "warmup"]
