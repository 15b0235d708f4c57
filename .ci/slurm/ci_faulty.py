"""A variant that fails in every cell: the fault injected to check retries and error reporting on SLURM.

Used as ``custom_variants: {faulty: "ci_faulty:Agent"}`` with this folder on PYTHONPATH.
"""

from pymdpbench.engines.standard import Agent as StandardAgent


class Agent(StandardAgent):
    """Claims to support every model, then fails on construction, like a broken engine would."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError("injected fault: this engine always fails")
