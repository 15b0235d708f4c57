"""Line-by-line memory of one agent step, with memory-profiler's line profiler (docs/memory-profile.md).

memory-profiler's line profiler runs in this process, by ``sys.settrace``: no sampler, no child
process, so it is safe after JAX or numba have started threads (its ``memory_usage`` sampler
forks a child and is not used here). Its ``tracemalloc`` backend reads the Python and numpy
memory in use at every line of a traced function; the *increment* of a line is that memory when
the line is left minus when the line before it was left, summed over the line's runs. So it names
the lines where memory is kept (a new array that outlives the line, a list that grows), not
temporaries allocated and freed within one line; numba's and XLA's own allocations are not seen.

The functions traced are the step's hot spots by cumulative time from cProfile (the profile
study has them), among the Python functions of pymdp's legacy package, of the engines and of the
agent's class: for pymdp's agent, pymdp's own lines (``pymdp/legacy/control.py:439``).
"""

import inspect
import sys


def traced_functions(agent):
    """The Python functions memory-profiler can trace: every plain function and method defined in
    an imported module of ``pymdp.legacy`` or ``pymdpbench.engines``, and the methods of the agent's
    class and its bases."""
    modules = [m for name, m in list(sys.modules.items()) if name.startswith(("pymdp.legacy", "pymdpbench.engines"))]
    found = {}
    for owner in [*modules, *type(agent).__mro__]:
        for value in list(vars(owner).values()):
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if inspect.isclass(value) and value.__module__ == getattr(owner, "__name__", None):
                candidates = [
                    v.__func__ if isinstance(v, (staticmethod, classmethod)) else v for v in vars(value).values()
                ]
            else:
                candidates = [value]
            for function in candidates:
                if inspect.isfunction(function) and function.__module__.startswith(
                    ("pymdp.legacy", "pymdpbench.engines")
                ):
                    found[function.__code__] = function
    return list(found.values())


def location(filename, lineno):
    """``pymdp/legacy/maths.py:517`` rather than the whole path."""
    for marker in ("site-packages/", "/src/"):
        if marker in filename:
            return f"{filename.rsplit(marker, 1)[1]}:{lineno}"
    return f"{filename}:{lineno}"


def hot_functions(agent, stats, count):
    """The ``count`` traceable functions with the most cumulative time in cProfile ``stats``
    (``pstats.Stats(...).stats``) of the same step: where a step spends its time is where its
    memory is worth reading line by line."""
    by_place = {(f.__code__.co_filename, f.__code__.co_firstlineno): f for f in traced_functions(agent)}
    ranked = sorted(stats.items(), key=lambda item: -item[1][3])
    hot = [by_place[key[:2]] for key, _ in ranked if key[:2] in by_place]
    return list(dict.fromkeys(hot))[:count]


def line_memory(agent, step, functions, top=10):
    """Run ``step(agent)`` once per function in ``functions``, each time with that function alone
    under memory-profiler's line profiler; the ``top`` lines by increment, as the row's
    ``memory_line*`` columns.

    One function at a time because memory-profiler measures a line against the line before it
    in the same function: a traced callee in between would break that chain. What a callee
    allocates shows on the line that calls it. The ``def`` line, which memory-profiler charges
    with the whole resident memory, and lines that did not grow memory are left out."""
    import tracemalloc

    from memory_profiler import LineProfiler

    lines, tracing = [], tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    for function in functions:
        profiler = LineProfiler(backend="tracemalloc")
        profiler.add_function(function)
        profiler.enable_by_count()
        try:
            step(agent)
        finally:
            profiler.disable_by_count()
        first = function.__code__.co_firstlineno
        lines += [
            (entry[0], entry[2], location(filename, lineno))
            for filename, entries in profiler.code_map.items()
            for lineno, entry in entries
            if entry and lineno != first and entry[0] > 0
        ]
    if not tracing:
        tracemalloc.stop()
    lines.sort(key=lambda line: (-line[0], line[2]))
    lines = lines[:top]
    return {
        "memory_line": [name for _, _, name in lines],
        "memory_line_increment_bytes": [round(increment * 2**20) for increment, _, _ in lines],
        "memory_line_runs": [int(runs) for _, runs, _ in lines],
    }
