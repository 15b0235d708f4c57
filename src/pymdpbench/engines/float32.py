"""The numba engine in float32: the same kernels, compiled for float32, on a model held in float32.

The model fields (``A, B, C, D, E, pA, pB, pD``) are converted to float32 whenever they are
assigned -- by the constructor, by learning, or by you (``agent.C = ...``) -- so the model takes
half the memory of the float64 engine and a step reads half the bytes, which is what limits speed
from a few hundred states on. An in-place edit of the agent's arrays (``agent.C[1][1] = 3.0``) is
seen at the next call, as in pymdp. One difference from pymdp follows from holding a converted copy:
the float64 arrays you passed in or assigned are not the agent's arrays, so editing *them* afterwards
does not reach the agent (in pymdp it would); edit ``agent.A`` etc. instead. An array put into the
agent's object arrays directly (``agent.A[0] = float64_array``) is read and converted at every call.

Paths that run pymdp's own code (MMP, sophisticated or inductive planning, learning) compute with
these float32 arrays in numpy, mostly in float64 after numpy's type promotion.

Tolerance: float32 carries ~7 significant digits (machine epsilon 1.2e-7). Sums over a few hundred
terms of G and the softmax over policies at gamma = 16 bring deviations from pymdp's float64 to a
few 1e-6 in qs and G and up to ~6e-5 in q_pi, so the gate allows 1e-4. Actions can differ from the
reference where two actions' probabilities are within float32 rounding: a deterministic near-tie
(|P(a) - P(b)| about 1e-7 to 1e-8, legacy's tie tolerance is 1e-8) or a stochastic draw whose
uniform lands that close to a cumulative boundary. A multi-factor posterior can also stop its
fixed-point iteration one step earlier or later when the free-energy change is within float32
rounding of legacy's dF_tol = 0.001.
"""

import numpy as np

from pymdpbench.engines import numba as numba_engine

#: the model fields held in float32
MODEL_FIELDS = frozenset({"A", "B", "C", "D", "E", "pA", "pB", "pD"})


def as_float32(value):
    """A float32 copy of an array or of an object array of arrays; anything else as it is (pymdp
    then reports it)."""
    if not isinstance(value, np.ndarray):
        return value
    if value.dtype != object:
        return value.astype(np.float32) if np.issubdtype(value.dtype, np.number) else value
    out = np.empty(value.shape, dtype=object)
    for i, item in enumerate(value.flat):
        out.flat[i] = as_float32(item)
    return out


class Agent(numba_engine.Agent):
    """``pymdpbench.engines.numba.Agent`` with its model and kernels in float32."""

    dtype = np.float32

    def __setattr__(self, name, value):
        if name in MODEL_FIELDS:
            value = as_float32(value)
        super().__setattr__(name, value)

    def _draw_probabilities(self, p):
        """``np.random.multinomial`` wants float64 probabilities whose first n-1 sum to at most 1 + 1e-12:
        float32 rounding can exceed that, so the vector is renormalised in float64 before the draw."""
        p = np.asarray(p, dtype=np.float64)
        return p / p.sum()


def warmup():
    """Compile the float32 kernels on tiny models; seconds taken (see
    :meth:`pymdpbench.engines.numba.Agent.compile_kernels`)."""
    return Agent.compile_kernels()
