"""The one scorer concept: settings parsed once, every scorer through one protocol, and no code
outside `nas/scorers/` asking which kind of scorer it has."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from nas.config import DataConfig, SearchConfig, SpaceConfig
from nas.errors import ConfigError, UnknownNameError
from nas.problem import build_problem
from nas.scorers import Scorer, ScorerSetting, build_scorer

REPO = Path(__file__).resolve().parents[2]
KINDS = {"supernet", "proxy", "oracle"}


def _kind_comparisons(source: str) -> list[int]:
    """Lines comparing something with a scorer kind's name ("supernet", "proxy", "oracle", or a
    "proxy:..."/"oracle:..." literal), or asking a string whether it starts with one."""

    def is_kind(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value in KINDS or node.value.startswith(("proxy:", "oracle:"))
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return any(is_kind(e) for e in node.elts)
        return False

    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(map(is_kind, [node.left, *node.comparators])):
            lines.append(node.lineno)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("startswith", "endswith") and any(map(is_kind, node.args))):
            lines.append(node.lineno)
    return lines


def test_no_module_outside_the_scorer_room_branches_on_the_kind_of_scorer():
    offending = [f"{path.relative_to(REPO)}:{line}"
                 for path in sorted((REPO / "nas").rglob("*.py"))
                 if "scorers" not in path.relative_to(REPO / "nas").parts
                 for line in _kind_comparisons(path.read_text())]
    assert offending == []


def test_the_scan_sees_each_way_of_branching_on_a_scorer_kind():
    assert _kind_comparisons('if config.scorer != "supernet":\n    pass\n') == [1]
    assert _kind_comparisons('x = kind in ("proxy", "oracle")\n') == [1]
    assert _kind_comparisons('y = s.startswith("oracle:")\n') == [1]
    assert _kind_comparisons('z = name == "naswot"\nw = "supernet"\n') == []


@pytest.mark.parametrize("text, kind, argument", [
    ("supernet", "supernet", ""), ("proxy:naswot", "proxy", "naswot"),
    ("oracle:/tmp/t.csv", "oracle", "/tmp/t.csv")])
def test_a_scorer_setting_is_parsed_once_and_reads_back_as_written(text, kind, argument):
    setting = ScorerSetting.parse(text)
    assert (setting.kind, setting.argument, str(setting)) == (kind, argument, text)
    assert setting.trains_supernet == (kind == "supernet")
    assert SearchConfig(scorer=text).scorer_setting == setting


@pytest.mark.parametrize("text", ["supernets", "supernet:x", "proxy:", "proxy", "oracle:",
                                  "table:x.csv", ""])
def test_a_malformed_scorer_is_one_line_naming_the_valid_ones(text):
    with pytest.raises(ConfigError, match=r"^unknown scorer .*choose supernet, a proxy \(.*naswot.*\), "
                                          r"a combination.*named one \(az_nas") as e:
        SearchConfig(scorer=text)
    assert "\n" not in str(e.value)


def test_a_table_column_belongs_to_a_table_and_an_unknown_proxy_is_refused_by_name():
    with pytest.raises(ConfigError, match="table column is for an oracle search"):
        ScorerSetting.parse("proxy:naswot", column="cifar10_test")
    with pytest.raises(UnknownNameError, match="unknown proxy 'nope'; choose one of: .*naswot"):
        ScorerSetting.parse("proxy:nope")


def test_the_supernet_scorer_needs_a_trained_supernet():
    problem = build_problem(SpaceConfig("nb201", 4, 1), DataConfig(), 0, "cpu")
    with pytest.raises(ConfigError, match="needs a trained supernet"):
        build_scorer(ScorerSetting(), problem)


def test_a_proxy_scorer_speaks_the_protocol_and_its_values_do_not_depend_on_order():
    problem = build_problem(SpaceConfig("nb201", 4, 1), DataConfig(), 0, "cpu")
    scorer = build_scorer(ScorerSetting.parse("proxy:synflow"), problem, seed=3)
    assert isinstance(scorer, Scorer)
    assert scorer.column == "synflow" and scorer.identity() == "proxy:synflow seed 3"
    # trust's second draw: the next seed's initialisation (and batch); a count has none
    assert scorer.redrawn().identity() == "proxy:synflow seed 4"
    assert build_scorer(ScorerSetting.parse("params"), problem, seed=3).redrawn() is None
    rng = np.random.default_rng(0)
    archs = [problem.space.sample(rng) for _ in range(3)]
    forward = [scorer(a) for a in archs]
    backward = [scorer(a) for a in reversed(archs)][::-1]
    assert forward == backward
