"""The numba engine in float32: the same kernels, compiled for float32, on a model held in float32.

Every array the kernels read (the packed A, B, W(pA), W(pB), ln softmax(C), ln E, D, qs) is cast
once, at construction, so the model takes half the memory of the float64 engine and a step reads
half the bytes -- which is what limits speed from a few hundred states on. numba compiles a separate
float32 specialisation of every kernel; the kernels take their constants and accumulators in the
dtype of their input (``dtype.type(...)``), so nothing is promoted to float64 inside the hot loops.

Tolerance: float32 carries ~7 significant digits (machine epsilon 1.2e-7). Sums over a few hundred
terms of G and the softmax over policies at gamma = 16 bring deviations from pymdp's float64 to a
few 1e-6 in qs and G and up to ~6e-5 in q_pi (``performance-baseline.md``), so the gate allows 1e-4.
Actions can differ from the reference where two actions' probabilities are within float32 rounding:
a deterministic near-tie (|P(a) - P(b)| about 1e-7 to 1e-8, legacy's tie tolerance is 1e-8) or a
stochastic draw whose uniform lands that close to a cumulative boundary. A multi-factor posterior
can also stop its fixed-point iteration one step earlier or later when the free-energy change is
within float32 rounding of legacy's dF_tol = 0.001.
"""

import numpy as np

from pymdpbench.engines import numba as numba_engine


class Agent(numba_engine.Agent):
    """``pymdpbench.engines.numba.Agent`` with every array and kernel in float32."""

    dtype = np.float32
    #: see the module docstring.
    tolerance = 1e-4

    def _draw_probabilities(self, p):
        """``np.random.multinomial`` wants float64 probabilities whose first n-1 sum to at most 1 + 1e-12:
        float32 rounding can exceed that, so the vector is renormalised in float64 before the draw."""
        p = p.astype(np.float64)
        return p / p.sum()


def warmup():
    """Compile the float32 kernels; seconds taken (see :meth:`pymdpbench.engines.numba.Agent.warmup`)."""
    return Agent.warmup()
