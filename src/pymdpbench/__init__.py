"""pymdp-bench: benchmark pymdp agents and faster drop-in engines that compute the same thing."""

__version__ = "0.1.0"
