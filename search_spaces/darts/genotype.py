"""The DARTS `Genotype(...)` notation: the canonical string of a darts architecture, and its parser.

A cell has input nodes 0 = c_{k-2} and 1 = c_{k-1} and intermediate nodes 2..5; each
intermediate node k sums two ops applied to two distinct earlier nodes i < j < k. A genotype
lists, per cell type, 8 `(op, input)` pairs, two per node in node order (quark0/darts
`cnn/genotypes.py`). Values are stored per node as `((i, j), op on i, op on j)`; the canonical
string writes each node's pairs sorted by input, and concat as `[2, 3, 4, 5]`.

`parse_genotype` reads published genotypes as written in Python (`range(2, 6)` concat, pairs of
a node in either order, any quotes and whitespace) by walking `ast.parse(text, mode="eval")`;
nothing is evaluated.
"""
from __future__ import annotations

import ast
import warnings
from collections import namedtuple
from itertools import combinations

from nas.errors import ArchitectureError
from search_spaces.darts.ops import OP_NAMES

# Same fields as DARTS's namedtuple, so other DARTS code accepts what `DartsSpace.genotype` gives.
Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")

CELL_TYPES: tuple[str, ...] = ("normal", "reduce")
NODES: tuple[int, ...] = (2, 3, 4, 5)
CONCAT: tuple[int, ...] = NODES  # DARTS concatenates every intermediate node (multiplier 4)
_FIELDS = Genotype._fields
_MAX_TEXT_CHARS = 20_000  # a canonical string is ~600 chars; commented source a few thousand

Node = tuple[tuple[int, int], str, str]  # ((i, j), op on input i, op on input j), i < j


def input_pairs(node: int) -> tuple[tuple[int, int], ...]:
    """All (i, j), i < j < node, in lexicographic order: 1, 3, 6, 10 pairs for nodes 2..5."""
    return tuple(combinations(range(node), 2))


def cell_nodes(values: tuple, cell: str) -> tuple[Node, ...]:
    """The 4 nodes of `cell` from a flat value tuple laid out (cell, node, (inputs, op0, op1))."""
    start = CELL_TYPES.index(cell) * 3 * len(NODES)
    return tuple(tuple(values[start + 3 * n: start + 3 * n + 3]) for n in range(len(NODES)))


def genotype_of(values: tuple) -> Genotype:
    """DARTS's namedtuple of a value tuple: pairs per node sorted by input, concat [2, 3, 4, 5]."""
    cells = {}
    for cell in CELL_TYPES:
        cells[cell] = [pair for (i, j), op_i, op_j in cell_nodes(values, cell)
                       for pair in ((op_i, i), (op_j, j))]
    return Genotype(normal=cells["normal"], normal_concat=list(CONCAT),
                    reduce=cells["reduce"], reduce_concat=list(CONCAT))


def format_genotype(values: tuple) -> str:
    """The canonical string: what `repr` of DARTS's namedtuple prints for list-valued fields."""
    genotype = genotype_of(values)
    parts = []
    for name in _FIELDS:
        items = getattr(genotype, name)
        if name.endswith("concat"):
            body = ", ".join(map(str, items))
        else:
            body = ", ".join(f"({op!r}, {i})" for op, i in items)
        parts.append(f"{name}=[{body}]")
    return f"Genotype({', '.join(parts)})"


# ---- parsing ------------------------------------------------------------------------------
def _token(node: ast.AST, text: str) -> str:
    """The source of `node` on one line, shortened, to name the bad token in an error."""
    source = " ".join((ast.get_source_segment(text, node) or type(node).__name__).split())
    return source if len(source) <= 60 else source[:57] + "..."


def _int(node: ast.AST) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    return None


def _read_pair(node: ast.AST, text: str, cell: str, k: int) -> tuple[int, str]:
    where = f"{cell} node {k}"
    if not isinstance(node, (ast.Tuple, ast.List)) or len(node.elts) != 2:
        raise ArchitectureError(f"expected an (op, input) pair in {where}, got "
                                f"{_token(node, text)}")
    op_node, index_node = node.elts
    if not (isinstance(op_node, ast.Constant) and isinstance(op_node.value, str)):
        raise ArchitectureError(f"op of {where} must be a quoted name, got {_token(op_node, text)}")
    op, index = op_node.value, _int(index_node)
    choices = ", ".join(OP_NAMES)
    if op == "none":
        raise ArchitectureError(f"op 'none' in {where} is not in this space (discretised DARTS "
                                f"cells never keep it); choose one of: {choices}")
    if op not in OP_NAMES:
        raise ArchitectureError(f"unknown op {op!r} in {where}; choose one of: {choices}")
    if index is None or not 0 <= index < k:
        raise ArchitectureError(f"input {_token(index_node, text)} of {where} is out of range; "
                                f"node {k} takes inputs 0..{k - 1}")
    return index, op


def _read_cell(node: ast.AST, text: str, cell: str) -> list[Node]:
    if not isinstance(node, (ast.List, ast.Tuple)):
        raise ArchitectureError(f"{cell} must be a list of 8 (op, input) pairs, got "
                                f"{_token(node, text)}")
    if len(node.elts) != 2 * len(NODES):
        raise ArchitectureError(f"{cell} has {len(node.elts)} (op, input) pairs; a DARTS cell has "
                                f"exactly 8, two per node 2..5")
    nodes = []
    for n, k in enumerate(NODES):
        pairs = sorted(_read_pair(p, text, cell, k) for p in node.elts[2 * n: 2 * n + 2])
        (i, op_i), (j, op_j) = pairs
        if i == j:
            raise ArchitectureError(f"{cell} node {k} takes input {i} twice; a node needs two "
                                    f"distinct inputs, as DARTS keeps its 2 strongest edges")
        nodes.append(((i, j), op_i, op_j))
    return nodes


def _read_concat(node: ast.AST, text: str, name: str) -> None:
    if isinstance(node, (ast.List, ast.Tuple)):
        value = tuple(_int(e) for e in node.elts)
    elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
          and node.func.id == "range" and not node.keywords and len(node.args) == 2):
        # Compare the bounds, never build the range: range(0, 10**99) must not be materialised.
        bounds = tuple(_int(a) for a in node.args)
        value = CONCAT if bounds == (CONCAT[0], CONCAT[-1] + 1) else None
    else:
        value = None
    if value != CONCAT:
        raise ArchitectureError(f"{name} must be [2, 3, 4, 5] or range(2, 6), got "
                                f"{_token(node, text)}")


def _fields_of(call: ast.Call, text: str) -> dict[str, ast.AST]:
    """Genotype's arguments by field name; positional arguments in namedtuple field order."""
    if len(call.args) > len(_FIELDS) or any(isinstance(a, ast.Starred) for a in call.args):
        raise ArchitectureError(f"Genotype takes at most 4 plain arguments ({', '.join(_FIELDS)}), "
                                f"got {_token(call, text)}")
    fields = dict(zip(_FIELDS, call.args))
    for keyword in call.keywords:
        if keyword.arg not in _FIELDS:
            shown = "**" if keyword.arg is None else repr(keyword.arg)
            raise ArchitectureError(f"unknown keyword {shown} in Genotype(...); expected: "
                                    f"{', '.join(_FIELDS)}")
        if keyword.arg in fields:
            raise ArchitectureError(f"Genotype keyword {keyword.arg!r} given twice")
        fields[keyword.arg] = keyword.value
    missing = [f for f in _FIELDS if f not in fields]
    if missing:
        raise ArchitectureError(f"Genotype lacks keyword {missing[0]!r}; expected: "
                                f"{', '.join(_FIELDS)}")
    return fields


def _read_genotype(text: str) -> tuple:
    with warnings.catch_warnings():  # e.g. SyntaxWarning for odd escapes: not our concern
        warnings.simplefilter("ignore")
        tree = ast.parse(text, mode="eval")
    call = tree.body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
            and call.func.id == "Genotype"):
        raise ArchitectureError(f"a darts architecture is a Genotype(normal=[...], normal_concat="
                                f"[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5]) call, "
                                f"got {_token(call, text)}")
    fields = _fields_of(call, text)
    values: list = []
    for cell in CELL_TYPES:
        _read_concat(fields[f"{cell}_concat"], text, f"{cell}_concat")
        for node in _read_cell(fields[cell], text, cell):
            values.extend(node)
    return tuple(values)


def parse_genotype(text: str) -> tuple:
    """Flat values (cell, node, (inputs, op0, op1)) of a Genotype string; else ArchitectureError."""
    if not isinstance(text, str):
        raise ArchitectureError(f"a darts architecture is a Genotype(...) string, got "
                                f"{type(text).__name__}")
    text = text.strip()
    if not text:
        raise ArchitectureError("empty darts architecture; expected Genotype(normal=[...], ...)")
    if len(text) > _MAX_TEXT_CHARS:
        raise ArchitectureError(f"genotype text of {len(text)} characters is too long; a darts "
                                f"Genotype(...) has under {_MAX_TEXT_CHARS}")
    try:
        return _read_genotype(text)
    except ArchitectureError:
        raise
    except SyntaxError as error:  # includes null bytes and over-nested brackets
        reason = " ".join(str(error.msg).split())
        where = f" at column {error.offset}" if error.offset else ""
        raise ArchitectureError(f"not a Genotype(...) expression: {reason}{where}") from None
    except ValueError as error:  # older Pythons: null bytes, over-long int literals
        reason = " ".join(str(error).split())
        raise ArchitectureError(f"not a Genotype(...) expression: {reason}") from None
    except (RecursionError, MemoryError):
        raise ArchitectureError("genotype text is nested too deeply to be a Genotype(...)") \
            from None
