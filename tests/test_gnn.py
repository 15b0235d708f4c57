"""The GNN reader: fixtures parse to the expected arrays, broken files are refused naming the problem."""

import ast
import builtins
import os
import re
from pathlib import Path

import numpy as np
import pytest

from pymdpbench.gnn import GNNError, read_gnn

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "config" / "models"
BROKEN = ROOT / "tests" / "fixtures" / "gnn"


def step(model):
    """One legacy-Agent step on the model: infer_states, infer_policies, sample_action."""
    from pymdpbench.engines.standard import Agent

    agent = Agent(**model.agent_kwargs())
    qs = agent.infer_states([0] * len(model.A))
    q_pi, G = agent.infer_policies()
    action = agent.sample_action()
    return qs, q_pi, G, action


def write_variant(tmp_path, source, *replacements, name="variant.md"):
    """A copy of a fixture with (old, new) text replacements; each old text must occur."""
    text = (MODELS / source).read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / name
    path.write_text(text)
    return path


def line_of(path, fragment):
    return next(i for i, line in enumerate(path.read_text().splitlines(), start=1) if fragment in line)


def test_switch_shapes_and_values():
    model = read_gnn(MODELS / "switch.md")
    assert model.name == "switch"
    assert [a.shape for a in model.A] == [(3, 3)]
    assert [b.shape for b in model.B] == [(3, 3, 3)]
    assert model.A_factor_list == [[0]]
    # A as written: rows are observations, columns states.
    assert model.A[0][1, 2] == 0.2 and model.A[0][2, 1] == 0.1
    # B written (action, previous, next) -> pymdp (next, previous, action).
    B = model.B[0]
    assert B[1, 0, 2] == 0.9  # up from off -> dim
    assert B[0, 0, 2] == 0.1  # up from off fails
    assert B[1, 2, 0] == 1.0  # down from bright -> dim
    assert B[2, 1, 0] == 0.0
    np.testing.assert_allclose(B.sum(axis=0), 1.0)
    np.testing.assert_array_equal(model.C[0], [0.0, 0.0, 2.0])
    # D is written 0.33333 x 3 and renormalised, which pymdp's own check then accepts.
    np.testing.assert_allclose(model.D[0], np.full(3, 1 / 3), atol=1e-15)
    assert model.meta["renormalised"] == ["D"]
    assert model.meta["parameters"]["num_timesteps"] == 10
    assert model.meta["time"]["ModelTimeHorizon"] == 10
    assert ("D", ">", "s") in model.meta["connections"]


def test_tmaze_shapes_and_values():
    model = read_gnn(MODELS / "tmaze.md")
    assert model.num_states == [4, 2] and model.num_obs == [4, 5] and model.num_controls == [4, 1]
    assert [a.shape for a in model.A] == [(4, 4), (5, 4, 2)]
    assert [b.shape for b in model.B] == [(4, 4, 4), (2, 2, 1)]
    # Factor dependence read from A's axes: location only, then location and context.
    assert model.A_factor_list == [[0], [0, 1]]
    assert model.meta["factors"] == ["loc", "ctx"] and model.meta["modalities"] == ["loc", "out"]
    A_out = model.A[1]
    assert A_out[1, 1, 0] == 0.9  # reward in the left arm when the reward is on the left
    assert A_out[1, 2, 0] == 0.1
    assert A_out[4, 3, 1] == 1.0  # cue right in the cue arm, context right
    B_loc = model.B[0]
    assert B_loc[1, 0, 1] == 1.0  # go left from the centre
    assert B_loc[1, 1, 3] == 1.0  # the left arm is absorbing, even under "go to cue"
    assert B_loc[3, 1, 3] == 0.0
    assert B_loc[3, 0, 3] == 1.0
    np.testing.assert_array_equal(model.B[1][:, :, 0], np.eye(2))
    np.testing.assert_array_equal(model.C[1], [0.0, 3.0, -3.0, 0.0, 0.0])
    np.testing.assert_array_equal(model.D[0], [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(model.D[1], [0.5, 0.5])


@pytest.mark.parametrize("fixture", sorted(p.name for p in MODELS.glob("*.md")))
def test_fixture_runs_in_the_legacy_agent(fixture):
    model = read_gnn(MODELS / fixture)
    qs, q_pi, G, action = step(model)
    assert len(qs) == len(model.B)
    np.testing.assert_allclose(q_pi.sum(), 1.0)
    assert action.shape == (len(model.B),)


def test_tmaze_agent_visits_the_cue_first():
    """With uncertainty about the context, the epistemic choice is the cue arm."""
    _, _, _, action = step(read_gnn(MODELS / "tmaze.md"))
    assert action[0] == 3


def test_non_normalised_b_column_is_refused():
    path = BROKEN / "bad_b_column.md"
    with pytest.raises(
        GNNError, match=re.escape("B[:, previous, action] is not normalised: column (0, 1) sums to 2")
    ) as error:
        read_gnn(path)
    assert str(path) in str(error.value)


def test_missing_section_is_named():
    with pytest.raises(GNNError, match=r"missing required section '## Connections'"):
        read_gnn(BROKEN / "missing_section.md")


def test_shape_mismatch_names_variable_and_both_shapes():
    path = BROKEN / "shape_mismatch.md"
    with pytest.raises(GNNError) as error:
        read_gnn(path)
    message = str(error.value)
    assert "A_obs" in message and "(3, 3)" in message and "(3, 2)" in message
    assert message.startswith(f"{path}:{line_of(path, 'A_obs={')}:")


def test_flat_brace_list_is_a_vector_not_a_set():
    model = read_gnn(BROKEN / "set_literal_d.md")
    np.testing.assert_array_equal(model.D[0], [0.25, 0.25, 0.25, 0.25])
    step(model)


def test_code_in_a_value_is_refused_not_run(monkeypatch):
    monkeypatch.delenv("PYMDPBENCH_GNN_INJECTED", raising=False)
    path = BROKEN / "injection.md"
    with pytest.raises(GNNError, match=re.escape(f"{path}:{line_of(path, '__import__')}: unexpected text")) as error:
        read_gnn(path)
    assert "value of D" in str(error.value)
    assert "PYMDPBENCH_GNN_INJECTED" not in os.environ


def test_reader_never_evaluates(monkeypatch):
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args[:1])
        raise AssertionError("the reader evaluated text")

    with monkeypatch.context() as patched:  # undone before pytest reports anything
        for name in ("eval", "exec"):
            patched.setattr(builtins, name, refuse)
        patched.setattr(ast, "literal_eval", refuse)
        for fixture in ("switch.md", "tmaze.md"):
            read_gnn(MODELS / fixture)
    assert calls == []


A_WRITTEN = """A={
  (0.9, 0.1, 0.0),   # dark
  (0.1, 0.8, 0.2),   # medium
  (0.0, 0.1, 0.8)    # light
}"""

B_WRITTEN = """B={
  ( # down
    (1.0, 0.0, 0.0),   # off    -> off"""

REFUSED = {
    "negative": (
        [("(0.9, 0.1, 0.0),   # dark", "(0.9, 0.1, -0.1),"), ("(0.0, 0.1, 0.8)    # light", "(0.0, 0.1, 0.9)")],
        r"A\[:, B\] has a negative probability at index \(0, 2\)",
    ),
    "nan in A": ([("(0.0, 0.1, 0.8)    # light", "(nan, 0.1, 0.8)")], r"A\[:, B\] holds NaN"),
    "nan in C": ([("C={(0.0, 0.0, 2.0)}", "C={(0.0, NaN, 2.0)}")], r"C holds NaN"),
    "D off by 1e-3": (
        [("D={0.33333, 0.33333, 0.33333}", "D={0.333, 0.333, 0.333}")],
        r"D is not normalised: column \(\) sums to 0.999",
    ),
    "B column off by 0.1": (
        [("(0.1, 0.9, 0.0),   # off    -> dim, fails one time in ten", "(0.2, 0.9, 0.0),")],
        re.escape("B[:, previous, action] is not normalised: column (0, 2) sums to 1.1"),
    ),
    "missing A": ([("A[3,3,type=float]", ""), (A_WRITTEN, "")], r"missing matrix A \(likelihood\)"),
    "missing B": (
        [("B[3,3,3,type=float]", ""), (B_WRITTEN, "X={\n  (\n    (1.0, 0.0, 0.0),")],
        r"missing matrix B \(transition\)",
    ),
    "declared without value": (
        [("D={0.33333, 0.33333, 0.33333}", "")],
        r"D is declared in StateSpaceBlock .* no value",
    ),
    "value without declaration": ([("D[3,type=float]", "")], r"D has a value but is not declared"),
    "garbled declaration": (
        [("C[3,type=float]", "C[3,type=float")],
        r":\d+: cannot read StateSpaceBlock line 'C\[3,type=float'",
    ),
    "missing comma": (
        [("C={(0.0, 0.0, 2.0)}", "C={(0.0, 0.0 2.0)}")],
        r":\d+: missing comma before '2.0' in the value of C",
    ),
    "unclosed value": (
        [("C={(0.0, 0.0, 2.0)}", "C={(0.0, 0.0, 2.0)")],
        r"the value of C \(line \d+\) is not closed before line \d+",
    ),
    "mismatched bracket": ([("C={(0.0, 0.0, 2.0)}", "C={(0.0, 0.0, 2.0]}")], r"'\(' closed by '\]'"),
    "ragged value": ([("(0.0, 1.0, 0.0)    # bright -> dim", "(0.0, 1.0)")], r"value of B is ragged"),
    "unknown section": ([("## Footer", "## Extras")], r"unknown section '## Extras'"),
    "garbled header": ([("## Footer", "## Footer notes")], r"garbled section header"),
    "garbled connection": ([("s-B\n", "s-B-\n")], r"cannot read connection 's-B-'"),
    "garbled parameter": ([("num_obs: 3", "num_obs 3")], r"cannot read ModelParameters line 'num_obs 3'"),
    "parameter disagrees": ([("num_obs: 3", "num_obs: 4")], r"ModelParameters num_obs: 4 disagrees .* \[3\]"),
    "symbolic matrix size": ([("C[3,type=float]", "C[n,type=float]")], r"C is declared with a symbolic size"),
    "wrong B layout": (
        [("B[3,3,3,type=float]", "B[3,3,2,type=float]")],
        r"B is declared \(next, previous, action\) = \(3, 3, 2\) .* should have shape \(2, 3, 3\), "
        r"but its value has shape \(3, 3, 3\)",
    ),
    "C for no A": (
        [("C[3,type=float]", "C_x[3,type=float]"), ("C={(0.0, 0.0, 2.0)}", "C_x={(0.0, 0.0, 2.0)}")],
        r"C_x has no matching A_x",
    ),
    "text before sections": (
        [("# GNN model: three-position dimmer switch", "dimmer switch")],
        r":1: text before the first",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_variants(tmp_path, case):
    replacements, pattern = REFUSED[case]
    path = write_variant(tmp_path, "switch.md", *replacements)
    with pytest.raises(GNNError, match=pattern) as error:
        read_gnn(path)
    assert str(error.value).startswith(str(path))


def test_value_error_line_points_at_the_value(tmp_path):
    path = write_variant(tmp_path, "switch.md", ("C={(0.0, 0.0, 2.0)}", "C={(0.0, 0.0, two)}"))
    with pytest.raises(GNNError, match=re.escape(f"{path}:{line_of(path, 'two')}: unexpected text 'two)}}'")):
        read_gnn(path)


def test_transition_with_as_many_actions_as_states_follows_the_convention(tmp_path):
    """3 states and 3 actions: the shape cannot tell the layout; the convention does."""
    B = read_gnn(MODELS / "switch.md").B[0]
    # Had the value been read without the transpose, B[:, 0, 2] would be the written row
    # (action 0, previous 0) = (1, 0, 0), not P(next | off, up) = (0.1, 0.9, 0).
    np.testing.assert_array_equal(B[:, 0, 2], [0.1, 0.9, 0.0])


def test_renormalisation_is_limited_to_rounding(tmp_path):
    path = write_variant(tmp_path, "switch.md", ("(0.1, 0.8, 0.2),   # medium", "(0.10003, 0.8, 0.2),"))
    model = read_gnn(path)
    assert sorted(model.meta["renormalised"]) == ["A", "D"]
    np.testing.assert_allclose(model.A[0].sum(axis=0), 1.0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(model.A[0][:, 1], [0.1, 0.8, 0.1])  # untouched column


def test_missing_c_and_d_take_pymdp_defaults(tmp_path):
    path = write_variant(
        tmp_path,
        "tmaze.md",
        ("C_loc[4,type=float]", ""),
        ("C_loc={(0.0, 0.0, 0.0, 0.0)}", ""),
        ("D_ctx[2,type=float]", ""),
        ("D_ctx={0.5, 0.5}", ""),
    )
    model = read_gnn(path)
    np.testing.assert_array_equal(model.C[0], np.zeros(4))
    np.testing.assert_array_equal(model.D[1], [0.5, 0.5])


def test_ambiguous_factor_dependence_is_refused(tmp_path):
    path = tmp_path / "ambiguous.md"
    path.write_text("""## GNNSection
ActInfPOMDP
## StateSpaceBlock
A[2,2,type=float]
B_x[2,2,1,type=float]
B_y[2,2,1,type=float]
## Connections
s_x-A
## InitialParameterization
A={(1.0, 0.0), (0.0, 1.0)}
B_x={((1.0, 0.0), (0.0, 1.0))}
B_y={((1.0, 0.0), (0.0, 1.0))}
""")
    with pytest.raises(
        GNNError, match=re.escape("A has state axes (2,), which match several factor choices (['x']; ['y'])")
    ):
        read_gnn(path)


def test_a_matching_no_factor_is_refused(tmp_path):
    path = write_variant(
        tmp_path,
        "tmaze.md",
        ("A_loc[4,4,type=float]", "A_loc[4,3,type=float]"),
        (
            "(1.0, 0.0, 0.0, 0.0),\n  (0.0, 1.0, 0.0, 0.0),\n  (0.0, 0.0, 1.0, 0.0),\n  (0.0, 0.0, 0.0, 1.0)\n}",
            "(1.0, 0.0, 0.0),\n  (0.0, 1.0, 0.0),\n  (0.0, 0.0, 1.0),\n  (0.0, 0.0, 0.0)\n}",
        ),
    )
    with pytest.raises(GNNError, match=re.escape("A_loc has state axes (3,), which match no factors")):
        read_gnn(path)


def test_missing_file_is_a_gnn_error(tmp_path):
    with pytest.raises(GNNError, match="cannot read the file"):
        read_gnn(tmp_path / "absent.md")
