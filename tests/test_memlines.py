"""Line-by-line memory (memory-profiler, in-process): it names the line that keeps memory, and pymdp's lines."""

import cProfile
import pstats
import types

import numpy as np

from pymdpbench.engines import get_engine
from pymdpbench.memlines import hot_functions, line_memory
from pymdpbench.models import random_model


def keep_and_drop(holder):
    holder.kept = np.empty(2**17)  # 1 MiB that outlives the line
    total = (np.empty(2**18) * 0).sum()  # 2 MiB, twice, allocated and freed within the line
    hidden = np.ones(2**17)  # 1 MiB allocated in numpy's own Python code: charged to numpy's file
    return total, hidden


def test_the_line_that_keeps_memory_is_named_with_its_size():
    holder = types.SimpleNamespace()
    lines = line_memory(holder, keep_and_drop, [keep_and_drop])
    kept_line = f"{keep_and_drop.__code__.co_filename.rsplit('/', 1)[1]}:{keep_and_drop.__code__.co_firstlineno + 1}"
    assert lines["memory_line"][0].endswith(kept_line)
    assert 2**20 <= lines["memory_line_increment_bytes"][0] < 2**20 + 2**16
    assert lines["memory_line_runs"][0] == 1
    assert all(increment < 2**16 for increment in lines["memory_line_increment_bytes"][1:])  # the temporary, np.ones


def test_pymdp_step_lines_are_pymdps_own():
    model = random_model(0, [16], [8], [3], name="random")
    agent = get_engine("standard")(A=model.A, B=model.B, C=model.C, D=model.D, policy_len=2)

    def step(a):
        a.infer_states([1])
        a.infer_policies()
        a.sample_action()

    step(agent)
    profiler = cProfile.Profile()
    profiler.runcall(step, agent)
    hot = hot_functions(agent, pstats.Stats(profiler).stats, 3)
    assert len(hot) == 3 and all(f.__module__.startswith("pymdp.legacy") for f in hot)
    lines = line_memory(agent, step, hot)
    assert lines["memory_line"] and all(name.startswith("pymdp/legacy/") for name in lines["memory_line"])
    assert all(b > 0 for b in lines["memory_line_increment_bytes"]) and all(r >= 1 for r in lines["memory_line_runs"])
