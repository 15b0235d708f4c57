"""The reference: pymdp's legacy numpy ``Agent``, untouched.

Every other engine is checked against this one in every cell (``pymdpbench.gate``).
"""

from pymdp.legacy.agent import Agent as LegacyNumpyAgent


class Agent(LegacyNumpyAgent):
    """``pymdp.legacy.agent.Agent`` with the engine protocol's ``supports``."""

    @classmethod
    def supports(cls, options):
        """pymdp runs every model it can hold; the size guard lives in the studies."""
        return True, ""
