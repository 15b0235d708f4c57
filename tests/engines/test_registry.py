"""The registry: names, paths and traits."""

import pytest

from pymdpbench.engines import ENGINES, TRAITS, Traits, get_engine, traits


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_a_registered_engine_has_the_same_traits_by_name_and_by_path(name):
    """The rules hand the cell an engine's path: its traits (tolerance, RNG kind) must be the engine's."""
    assert traits(ENGINES[name]) is traits(name) is TRAITS.get(name, traits(name))


def test_a_custom_engine_declares_its_own_traits_or_gets_the_defaults():
    assert traits("pymdpbench.engines.standard:Agent") is TRAITS["standard"]
    assert traits("a_name_only_a_config_knows") == Traits()
    assert get_engine("numba") is get_engine(ENGINES["numba"])
