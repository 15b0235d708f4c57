"""Read discrete POMDP models written in GNN (Generalized Notation Notation) into a :class:`Model`.

A GNN file is Markdown: ``## Name`` section headers, then one kind of content per section.
This reader handles the discrete POMDP subset, with one or several hidden-state factors
(``B``/``D`` or ``B_xxx``/``D_xxx``, one per factor) and one or several observation modalities
(``A``/``C`` or ``A_xxx``/``C_xxx``, one per modality), plus an optional policy prior ``E``.
The format as this reader takes it, with examples: docs/gnn-format.md.

Sections
    ``GNNSection``, ``StateSpaceBlock``, ``Connections`` and ``InitialParameterization`` are
    required. ``ModelParameters`` (``key: value``) and ``Time`` are read into ``meta``; the other
    sections of the GNN layout are free text. Any other section name, a garbled header, or a line
    a parsed section cannot read is refused with the file and line.

Values
    ``NAME={ ... }`` in InitialParameterization, over one or several lines, ``#`` comments
    allowed. Every bracket (``{``, ``(``, ``[``) opens one array dimension, so the flat brace list
    ``D={0.5,0.5}`` is a vector, not a Python set. Values are read by a tokenizer that accepts
    numbers (``nan``/``inf`` included, so validation can name them), brackets and commas only:
    nothing in a file is ever evaluated, and any other text is refused with its line.

Shapes
    Each matrix is declared in StateSpaceBlock as ``NAME[d1,d2,...,type=float]`` in pymdp's axis
    order: A is (observation, states of the factors it depends on...), B is (next, previous,
    action), C is (observation[, time]), D is (state,), E is (policy,). A, C, D, E are written in
    that order. **B is written (action, previous, next)** and transposed with
    ``transpose(2, 1, 0)``. This is the convention, applied always: the reader never guesses the
    layout from the shape, which is ambiguous whenever actions == states. A value must have the
    declared shape (for B: the declared shape reversed); the one tolerance is singleton axes,
    so ``C={(0.0, 2.0)}`` (shape (1, 2)) fills ``C[2]``. Anything else is refused naming the
    variable and both shapes. B depends on its own factor only (3 axes; no B_factor_list).

Factors and modalities
    Factors are the B matrices in the order StateSpaceBlock declares them; ``D_xxx`` belongs to
    ``B_xxx`` (missing: uniform). Modalities are the A matrices in declaration order; ``C_xxx``
    belongs to ``A_xxx`` (missing: zeros). Which factors a modality depends on is read from A's
    state axes: the factors, in declaration order, whose state counts equal those axes. Exactly
    one such choice must exist; an A that matches none, or several (say two 2-state factors and
    an A with one 2-state axis), is refused with the candidates listed. The result is the
    Model's explicit ``A_factor_list``.

Validation
    A, B, D (and E) must be finite, non-negative, and each column must sum to 1. Columns written
    with a few decimals do not sum to 1 exactly (0.33333 x 3), so a column whose sum is within
    ``NORMALISATION_ATOL`` = 1e-4 of 1 is divided by its sum, which makes pymdp's own check
    (``np.allclose``) pass; the names of such matrices are recorded in ``meta["renormalised"]``.
    A column further from 1 is refused naming the matrix and the column (pymdp axis order). C
    must be finite. ModelParameters ``num_hidden_states``/``num_states``, ``num_obs``,
    ``num_actions``/``num_controls``, when given as a list (or as one number for a model with
    one factor or modality), must agree with the arrays.

Every error is a :class:`GNNError` (a ``ValueError``) whose message starts with the file path.
"""

import itertools
import re
from pathlib import Path

import numpy as np

from pymdpbench.engines.base import check_distribution, obj_array
from pymdpbench.models import Model

#: sections a runnable model needs.
REQUIRED_SECTIONS = ("GNNSection", "StateSpaceBlock", "Connections", "InitialParameterization")
#: the GNN layout's sections, in their usual order.
KNOWN_SECTIONS = (
    "GNNSection",
    "GNNVersionAndFlags",
    "ModelName",
    "ModelAnnotation",
    "StateSpaceBlock",
    "Connections",
    "InitialParameterization",
    "Equations",
    "Time",
    "ActInfOntologyAnnotation",
    "ModelParameters",
    "Footer",
    "Signature",
)
#: a column summing to 1 within this is renormalised; further off it is refused. Values written
#: with 5 decimals are off by at most a few 1e-5.
NORMALISATION_ATOL = 1e-4

_NAME = r"[^\W\d][\w']*"
_SECTION_HEADER = re.compile(r"^##(?!#)\s*(?P<title>.*?)\s*$")
_SECTION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_DECLARATION = re.compile(rf"^(?P<name>{_NAME})\s*\[(?P<dims>[^\[\]]*)\]$")
_ASSIGNMENT = re.compile(rf"^(?P<name>{_NAME})\s*=\s*(?P<value>.*)$")
_KEY_VALUE = re.compile(rf"^(?P<key>{_NAME})\s*[:=]\s*(?P<value>.*)$")
_CONNECTION_OPERATOR = re.compile(r"\s*(->|<-|-|>|<)\s*")
_CONNECTION_END = re.compile(rf"^(?:{_NAME}|\(\s*{_NAME}(?:\s*,\s*{_NAME})*\s*\))$")
_MATRIX = re.compile(r"^(?P<kind>[ABCDE])(?:_(?P<label>\w+))?$")
_TOKEN = re.compile(
    r"\s*(?:(?P<number>[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|inf))(?![\w.])"
    r"|(?P<open>[{(\[])|(?P<close>[})\]])|(?P<comma>,))",
    re.IGNORECASE,
)
_CLOSING = {"{": "}", "(": ")", "[": "]"}


class GNNError(ValueError):
    """A GNN file that cannot be read as a valid discrete POMDP; the message starts with the path."""


def read_gnn(path):
    """The :class:`Model` written in the GNN file at ``path`` (see the module docstring)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise GNNError(f"{path}: cannot read the file ({error})") from error
    source = _Source(path)
    sections = _split_sections(source, text)
    for name in REQUIRED_SECTIONS:
        if name not in sections:
            raise source.error(f"missing required section '## {name}'")

    declarations = _read_state_space(source, sections["StateSpaceBlock"])
    connections = _read_connections(source, sections["Connections"])
    values = _read_initial_parameterization(source, sections["InitialParameterization"])
    parameters = _read_key_values(source, sections.get("ModelParameters", []))
    model = _build_model(source, declarations, values)
    _check_parameters(source, parameters, model)
    model.meta.update(
        {
            "source": str(path),
            "title": _free_text(sections.get("ModelName", [])),
            "gnn_section": _free_text(sections["GNNSection"]),
            "gnn_version": _free_text(sections.get("GNNVersionAndFlags", [])),
            "connections": connections,
            "parameters": parameters,
            "time": _read_time(sections.get("Time", [])),
        }
    )
    return model


class _Source:
    """The file being read, for error messages."""

    def __init__(self, path):
        self.path = path

    def error(self, message, line=None):
        where = f"{self.path}:{line}" if line is not None else f"{self.path}"
        return GNNError(f"{where}: {message}")


def _split_sections(source, text):
    """``{section name: [(line number, line), ...]}``; the preamble may hold only ``#`` lines."""
    sections, current = {}, None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _SECTION_HEADER.match(line)
        if header:
            title = header.group("title")
            if not _SECTION_NAME.match(title):
                raise source.error(f"garbled section header {line.strip()!r}: expected '## Name', one word", number)
            if title not in KNOWN_SECTIONS:
                raise source.error(f"unknown section '## {title}': expected one of {', '.join(KNOWN_SECTIONS)}", number)
            if title in sections:
                raise source.error(f"section '## {title}' appears twice", number)
            current = sections[title] = []
        elif current is not None:
            current.append((number, line))
        elif line.strip() and not line.lstrip().startswith("#"):
            raise source.error(f"text before the first '## Section' header: {line.strip()!r}", number)
    return sections


def _content(lines):
    """(line number, text without its ``#`` comment) for every line with content."""
    for number, line in lines:
        text = line.split("#", 1)[0].strip()
        if text:
            yield number, text


def _free_text(lines):
    return " ".join(line.strip() for _, line in lines if line.strip())


def _read_state_space(source, lines):
    """``{name: (dims, line)}`` in declaration order; dims are ints, or strings for symbolic sizes."""
    declarations = {}
    for number, text in _content(lines):
        match = _DECLARATION.match(text)
        if not match:
            raise source.error(
                f"cannot read StateSpaceBlock line {text!r}: expected NAME[d1,d2,...,type=float]", number
            )
        name = match.group("name")
        if name in declarations:
            raise source.error(f"{name} is declared twice in StateSpaceBlock", number)
        dims = []
        for part in (p.strip() for p in match.group("dims").split(",")):
            if re.fullmatch(r"\d+", part):
                dims.append(int(part))
            elif re.fullmatch(r"type\s*=\s*\w+", part):
                continue
            elif re.fullmatch(_NAME, part):
                dims.append(part)
            else:
                raise source.error(f"cannot read dimension {part!r} of {name}", number)
        declarations[name] = (dims, number)
    return declarations


def _read_connections(source, lines):
    """Connections as ``(from, operator, to)`` triples (``-`` undirected, ``>`` directed)."""
    edges = []
    for number, text in _content(lines):
        parts = _CONNECTION_OPERATOR.split(text)
        ends = parts[0::2]
        if len(parts) < 3 or not all(_CONNECTION_END.match(end) for end in ends):
            raise source.error(f"cannot read connection {text!r}: expected e.g. 'D>s' or 's-A'", number)
        edges.extend((parts[i], parts[i + 1], parts[i + 2]) for i in range(0, len(parts) - 2, 2))
    return edges


def _tokenize(source, text, number, name):
    """Tokens ``(kind, text, line)`` of a value: numbers, brackets and commas, nothing else."""
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            rest = text[position:].strip()
            if not rest:
                break
            raise source.error(
                f"unexpected text {rest[:30]!r} in the value of {name}: only numbers, brackets and commas are allowed",
                number,
            )
        tokens.append((match.lastgroup, match.group(match.lastgroup), number))
        position = match.end()
    return tokens


def _nest(source, tokens, name):
    """Nested lists of floats from the tokens of one value; every bracket is one dimension."""
    root, stack, separated = [], [], True
    current = root
    for kind, text, number in tokens:
        if kind in ("number", "open") and not separated:
            raise source.error(f"missing comma before {text!r} in the value of {name}", number)
        if kind == "number":
            current.append(float(text))
            separated = False
        elif kind == "open":
            child = []
            current.append(child)
            stack.append((current, text))
            current, separated = child, True
        elif kind == "comma":
            if separated:
                raise source.error(f"unexpected comma in the value of {name}", number)
            separated = True
        else:
            if not stack:
                raise source.error(f"unmatched {text!r} in the value of {name}", number)
            parent, opening = stack.pop()
            if _CLOSING[opening] != text:
                raise source.error(f"{opening!r} closed by {text!r} in the value of {name}", number)
            current, separated = parent, False
    if stack:
        raise source.error(f"the value of {name} is not closed", tokens[-1][2])
    if len(root) != 1:
        raise source.error(
            f"the value of {name} must be one number or one bracketed list", tokens[0][2] if tokens else None
        )
    return root[0]


def _read_initial_parameterization(source, lines):
    """``{name: (nested lists of floats, first line)}``."""
    values, pending = {}, None
    for number, text in _content(lines):
        if pending is None:
            match = _ASSIGNMENT.match(text)
            if not match:
                raise source.error(f"cannot read InitialParameterization line {text!r}: expected NAME={{...}}", number)
            name = match.group("name")
            if name in values:
                raise source.error(f"{name} is given twice in InitialParameterization", number)
            pending, text, depth = (name, number, []), match.group("value"), 0
        elif _ASSIGNMENT.match(text):
            raise source.error(
                f"the value of {pending[0]} (line {pending[1]}) is not closed before line {number}", number
            )
        name, start, tokens = pending
        for token in _tokenize(source, text, number, name):
            if depth == 0 and tokens:
                raise source.error(f"unexpected {token[1]!r} after the value of {name}", number)
            depth += {"open": 1, "close": -1}.get(token[0], 0)
            tokens.append(token)
        if tokens and depth <= 0:
            values[name] = (_nest(source, tokens, name), start)
            pending = None
    if pending is not None:
        raise source.error(f"the value of {pending[0]} is not closed before the section ends", pending[1])
    return values


def _parse_scalar(source, text, number, key):
    """A ModelParameters value: int, float, list of numbers, or the text itself."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    if text[:1] in _CLOSING:
        try:
            flat = np.ravel(np.array(_nest(source, _tokenize(source, text, number, key), key), dtype=float))
        except ValueError:
            raise source.error(f"the value of {key} is ragged", number) from None
        return [int(v) if v.is_integer() else float(v) for v in flat]
    return text


def _read_key_values(source, lines):
    """ModelParameters: ``{key: value}`` from ``key: value`` lines."""
    parameters = {}
    for number, text in _content(lines):
        match = _KEY_VALUE.match(text)
        if not match:
            raise source.error(f"cannot read ModelParameters line {text!r}: expected 'key: value'", number)
        parameters[match.group("key")] = _parse_scalar(source, match.group("value").strip(), number, match.group("key"))
    return parameters


def _read_time(lines):
    """The Time section, leniently: ``key=value`` pairs and flags such as Dynamic, Discrete."""
    time = {}
    for _, text in _content(lines):
        key, _, value = (part.strip() for part in text.partition("="))
        time[key] = int(value) if value.isdigit() else (value or True)
    return time


def _shaped(source, name, kind, dims, lines, nested):
    """The value as an array in pymdp's axis order, after checking it against its declaration."""
    declared_line, value_line = lines
    if any(isinstance(d, str) for d in dims):
        raise source.error(f"{name} is declared with a symbolic size {dims}: matrices need numbers", declared_line)
    if kind == "B" and (len(dims) != 3 or dims[0] != dims[1]):
        raise source.error(
            f"{name} is declared {dims}: a transition matrix is [next, previous, action] "
            "with as many next as previous states",
            declared_line,
        )
    written = tuple(dims[::-1]) if kind == "B" else tuple(dims)
    try:
        array = np.array(nested, dtype=float)
    except ValueError:
        raise source.error(f"the value of {name} is ragged: its rows have different lengths", value_line) from None
    if array.shape != written:
        if [d for d in array.shape if d != 1] != [d for d in written if d != 1]:
            if kind == "B":
                expected = (
                    f"declared (next, previous, action) = {tuple(dims)} on line {declared_line}, so its value, "
                    f"written (action, previous, next), should have shape {written}"
                )
            else:
                expected = f"declared with shape {written} on line {declared_line}"
            raise source.error(f"{name} is {expected}, but its value has shape {array.shape}", value_line)
        array = array.reshape(written)
    return array.transpose(2, 1, 0) if kind == "B" else array


def _validated(source, name, described, array, renormalised):
    """``array`` with columns within NORMALISATION_ATOL of 1 renormalised; refused if any column is further off.

    ``described`` names the matrix and its axes in the error (``check_distribution``'s message).
    """
    sums = array.sum(axis=0)
    close = np.isfinite(sums) & (np.abs(sums - 1.0) <= NORMALISATION_ATOL)
    if np.any(close & (sums != 1.0)):
        array = np.where(close, array / np.where(close, sums, 1.0), array)
        renormalised.append(name)
    try:
        check_distribution(described, array)
    except ValueError as error:
        raise source.error(str(error)) from None
    return array


def _factor_list(source, name, shape, num_states, factor_names):
    """The factors (in declaration order) whose state counts match A's state axes; exactly one choice."""
    dims = tuple(shape[1:])
    candidates = [
        list(c)
        for c in itertools.combinations(range(len(num_states)), len(dims))
        if tuple(num_states[f] for f in c) == dims
    ]
    if len(candidates) == 1:
        return candidates[0]
    sizes = ", ".join(f"{n}: {s}" for n, s in zip(factor_names, num_states))
    if not candidates:
        raise source.error(
            f"{name} has state axes {dims}, which match no factors in declaration order (factor sizes {sizes})"
        )
    listed = "; ".join(str([factor_names[f] for f in c]) for c in candidates)
    raise source.error(
        f"{name} has state axes {dims}, which match several factor choices ({listed}); "
        "give the factors different sizes or order"
    )


def _build_model(source, declarations, values):
    """Pair the matrices into factors and modalities, shape and validate them."""
    matrices = {kind: [] for kind in "ABCDE"}
    for name, (dims, line) in declarations.items():
        match = _MATRIX.match(name)
        if not match:
            continue
        kind, label = match.group("kind"), match.group("label") or ""
        if kind == "E" and label:
            raise source.error(f"{name}: the policy prior is a single E", line)
        if name not in values:
            raise source.error(
                f"{name} is declared in StateSpaceBlock but has no value in InitialParameterization", line
            )
        nested, value_line = values[name]
        matrices[kind].append((label, name, _shaped(source, name, kind, dims, (line, value_line), nested)))
    for name, (_, line) in values.items():
        if _MATRIX.match(name) and name not in declarations:
            raise source.error(f"{name} has a value but is not declared in StateSpaceBlock", line)
    for kind, role in (("A", "likelihood"), ("B", "transition")):
        if not matrices[kind]:
            raise source.error(
                f"missing matrix {kind} ({role}): declare {kind} or {kind}_name in StateSpaceBlock "
                "and give its value in InitialParameterization"
            )

    renormalised = []
    factor_names = [label or name for label, name, _ in matrices["B"]]
    B = [_validated(source, name, f"{name}[:, previous, action]", b, renormalised) for _, name, b in matrices["B"]]
    num_states = [b.shape[0] for b in B]
    D = []
    for f, (d_name, d) in enumerate(_paired(source, matrices["D"], matrices["B"], "B")):
        if d is None:
            D.append(np.full(num_states[f], 1.0 / num_states[f]))
            continue
        if d.shape != (num_states[f],):
            raise source.error(f"{d_name} has shape {d.shape}, but {matrices['B'][f][1]} has {num_states[f]} states")
        D.append(_validated(source, d_name, d_name, d, renormalised))

    A, A_factor_list = [], []
    for _, name, a in matrices["A"]:
        factors = _factor_list(source, name, a.shape, num_states, factor_names)
        axes = ", ".join(factor_names[f] for f in factors)
        A.append(_validated(source, name, f"{name}[:, {axes}]", a, renormalised))
        A_factor_list.append(factors)
    num_obs = [a.shape[0] for a in A]
    C = []
    for m, (c_name, c) in enumerate(_paired(source, matrices["C"], matrices["A"], "A")):
        if c is None:
            C.append(np.zeros(num_obs[m]))
            continue
        if c.ndim not in (1, 2) or c.shape[0] != num_obs[m]:
            raise source.error(f"{c_name} has shape {c.shape}, but {matrices['A'][m][1]} has {num_obs[m]} outcomes")
        if not np.all(np.isfinite(c)):
            raise source.error(f"{c_name} holds NaN or inf")
        C.append(c)

    E = None
    if matrices["E"]:
        E = _validated(source, "E", "E", matrices["E"][0][2].ravel(), renormalised)

    meta = {
        "factors": factor_names,
        "modalities": [label or name for label, name, _ in matrices["A"]],
        "renormalised": renormalised,
    }
    return Model(
        source.path.stem,
        obj_array(A),
        obj_array(B),
        obj_array(C),
        obj_array(D),
        E=E,
        A_factor_list=A_factor_list,
        meta=meta,
    )


def _paired(source, given, owners, owner_kind):
    """``(name, array)`` of the C/D matching each owner (A/B) by label, in the owners' order; (None, None) where absent."""
    by_label = {label: (name, array) for label, name, array in given}
    labels = [label for label, _, _ in owners]
    for label, (name, _) in by_label.items():
        if label not in labels:
            owner = f"{owner_kind}_{label}" if label else owner_kind
            raise source.error(f"{name} has no matching {owner} (declared: {', '.join(n for _, n, _ in owners)})")
    return [by_label.get(label, (None, None)) for label in labels]


def _check_parameters(source, parameters, model):
    """ModelParameters sizes that are unambiguous must agree with the arrays."""
    checks = (
        ("num_hidden_states", model.num_states),
        ("num_states", model.num_states),
        ("num_obs", model.num_obs),
        ("num_actions", model.num_controls),
        ("num_controls", model.num_controls),
    )
    for key, actual in checks:
        if key not in parameters:
            continue
        value = parameters[key]
        if isinstance(value, list):
            stated = value
        elif isinstance(value, int) and len(actual) == 1:
            stated = [value]
        else:
            continue
        if list(stated) != list(actual):
            raise source.error(f"ModelParameters {key}: {value} disagrees with the matrices, which give {actual}")
