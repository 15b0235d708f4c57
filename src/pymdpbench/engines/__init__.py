"""The variant axis: a registry of engines, each a drop-in for pymdp's legacy ``Agent``.

Engines are imported lazily, by name, so that a cell imports only what its variant needs
(``import pymdp.legacy`` alone pulls in JAX and costs over a second).
"""

from importlib import import_module

#: variant name -> "module:class". Adding a variant = one file + one line here
#: (or pass "package.module:Class" wherever a variant name is accepted).
ENGINES = {
    "standard": "pymdpbench.engines.standard:Agent",
    "numba": "pymdpbench.engines.numba:Agent",
    "sparse": "pymdpbench.engines.sparse:Agent",
    "float32": "pymdpbench.engines.float32:Agent",
    "jax": "pymdpbench.engines.jax:Agent",
}


def resolve(variant):
    """The "module:Class" path of a registered name, or the path itself."""
    if variant in ENGINES:
        return ENGINES[variant]
    if ":" in variant:
        return variant
    raise KeyError(f"unknown variant {variant!r}: expected one of {sorted(ENGINES)} or 'module:Class'")


def get_engine(variant):
    """The Agent class of a variant (a registered name or a 'module:Class' path)."""
    module_name, class_name = resolve(variant).split(":")
    return getattr(import_module(module_name), class_name)
