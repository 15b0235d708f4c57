"""The variant axis: a registry of engines, each a drop-in for pymdp's legacy ``Agent``, and the
traits each engine declares as data, so that no study, resource estimate, table or figure has to
name an engine.

Engines are imported lazily, by name, so that a cell imports only what its variant needs
(``import pymdp.legacy`` alone pulls in JAX and costs over a second). The registry and the traits
are plain data: reading them imports nothing heavy (Snakemake reads them while it builds the DAG).
"""

from dataclasses import dataclass
from importlib import import_module


@dataclass(frozen=True)
class Traits:
    """What the rest of the framework may know about an engine, declared by the engine.

    A custom engine ("module:Class") declares them as a ``traits`` class attribute; without one it
    gets these defaults (a dense float64 engine that draws like pymdp).
    """

    #: bytes the engine stores per model entry (dense), or per non-zero entry (``storage="sparse"``)
    bytes_per_entry: float = 8
    #: "dense": A and B held whole; "sparse": held as sparse matrices, bytes scale with density
    storage: str = "dense"
    #: gate tolerance on max |qs|, |q_pi| and |G| / max(1, |G_ref|) against pymdp's legacy agent
    tolerance: float = 1e-10
    #: "numpy": draws exactly like pymdp, from numpy's global RandomState (same actions, same
    #: RNG state); "own": draws from its own generator, so the gate replays the reference actions
    rng: str = "numpy"
    #: whether cProfile sees where its time goes (not inside XLA-compiled code)
    profilable: bool = True
    #: "module:Class" of the engine's batched form (many agents per call), or None
    batched: str | None = None
    #: where it knowingly computes otherwise than pymdp's legacy agent, each documented by the engine:
    #: "fixed_sweeps" (several factors: a fixed number of fixed-point sweeps, not legacy's dF stop),
    #: "clipped_log" (an outcome a state cannot emit: log clipped at machine epsilon, not ln(x + 1e-16))
    deviations: frozenset = frozenset()


#: variant name -> "module:class". Adding a variant = one file + one line here (and one in TRAITS
#: if it differs from the defaults); or pass "package.module:Class" wherever a variant name is accepted.
ENGINES = {
    "standard": "pymdpbench.engines.standard:Agent",
    "numba": "pymdpbench.engines.numba:Agent",
    "sparse": "pymdpbench.engines.sparse:Agent",
    "float32": "pymdpbench.engines.float32:Agent",
    "jax": "pymdpbench.engines.jax:Agent",
}

#: traits of the registered engines that differ from the defaults (each engine's module says why)
TRAITS = {
    "standard": Traits(),
    "numba": Traits(batched="pymdpbench.engines.batched:BatchedAgent"),
    "float32": Traits(bytes_per_entry=4, tolerance=1e-4, batched="pymdpbench.engines.batched:BatchedAgent32"),
    "sparse": Traits(bytes_per_entry=12, storage="sparse"),
    "jax": Traits(
        tolerance=1e-4,
        rng="own",
        profilable=False,
        batched="pymdpbench.engines.jax:BatchedAgent",
        deviations=frozenset({"fixed_sweeps", "clipped_log"}),
    ),
}


#: a registered engine's path -> its name (rules hand the cell a path)
_NAME_OF_PATH = {path: name for name, path in ENGINES.items()}


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


def traits(variant):
    """The :class:`Traits` of a variant: from the registry for a registered name (no import); for a
    "module:Class" path, the class's own ``traits`` attribute; else (a name known only to a
    configuration, e.g. while Snakemake estimates resources) the defaults."""
    variant = _NAME_OF_PATH.get(variant, variant)
    if variant in TRAITS:
        return TRAITS[variant]
    if ":" not in variant:
        return Traits()
    declared = getattr(get_engine(variant), "traits", None)
    return declared if isinstance(declared, Traits) else Traits()
