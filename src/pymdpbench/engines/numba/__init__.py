"""The numba engine: pymdp's legacy Agent (a subclass) whose inference, planning and action
selection run in compiled kernels (:mod:`.agent` the facade, :mod:`.kernels` the kernels)."""

from pymdpbench.engines.numba.agent import Agent


def warmup():
    """Compile the float64 kernels on tiny models; seconds taken (see :meth:`Agent.compile_kernels`)."""
    return Agent.compile_kernels()


__all__ = ["Agent", "warmup"]
