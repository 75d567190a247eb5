"""Combined scorers: quantiles against a fixed reference, AZ-NAS's log-rank aggregation against
its closed form, invariance to monotone transforms, and searches that resume and share."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import optuna
import pandas as pd
import pytest
from scipy import stats

from nas.cli import main
from nas.errors import ConfigError
from nas.scorers import ScorerSetting
from nas.scorers.combined import (COLUMN, DEFAULT_WITH_SUPERNET, REFERENCE_FILE, REFERENCE_SIZE,
                                  CombinedScorer, aggregate, quantile)
from nas.search.shared_study import make_storage
from search_spaces import Skeleton, get_space

TINY = ["--space", "nb201", "--width", "4", "--cells", "1", "--device", "cpu"]


class _Values:
    """A scorer that looks its value up (or computes it) from the canonical string."""

    def __init__(self, column: str, values) -> None:
        self.column, self.values = column, values

    def __call__(self, arch) -> float:
        return float(self.values(str(arch)))

    def identity(self) -> str:
        return f"values:{self.column}"

    def redrawn(self) -> None:
        return None

    def parts(self, arch) -> dict:
        return {}


def _space():
    return get_space("nb201", Skeleton(width=4, cells=1))


def _hash_value(salt: int):
    return lambda text: (hash((text, salt)) % 1000) / 7.0


def test_quantile_is_the_mid_rank_among_the_reference_with_the_value_added():
    reference = np.array([1.0, 2.0, 2.0, 5.0])
    # rank of 2 among (1, 2, 2, 5, 2): ties at ranks 2..4 average to 3, over 5 values
    assert quantile(reference, 2.0) == pytest.approx(3 / 5)
    assert quantile(reference, 0.0) == pytest.approx(1 / 5)
    assert quantile(reference, 9.0) == pytest.approx(5 / 5)
    assert quantile(reference, float("nan")) == quantile(reference, -math.inf) == pytest.approx(1 / 5)


def test_log_rank_aggregation_equals_az_nas_closed_form_over_the_reference_plus_one():
    """AZ-NAS: s = sum over scores of ln(rank / N) with ranks (ties averaged) over the whole
    population; a candidate scored against the reference gets exactly its value in the
    population of the reference and itself."""
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 6, size=(2, 9)).astype(float)  # ties on purpose
    scorer = CombinedScorer({"a": _Values("a", None), "b": _Values("b", None)},
                            {"a": reference[0], "b": reference[1]}, "log_rank")
    for candidate in ([3.0, 0.0], [7.0, 2.0], [2.5, 5.0]):
        population = np.concatenate([reference, np.array(candidate)[:, None]], axis=1)
        closed = sum(math.log(stats.rankdata(row)[-1] / population.shape[1])
                     for row in population)
        scorer._parts = {"a": _Values("a", lambda _: candidate[0]),
                         "b": _Values("b", lambda _: candidate[1])}
        scorer._explained = {}
        assert scorer(str(candidate)) == pytest.approx(closed)
    assert aggregate([0.5, 0.25], "mean") == pytest.approx(0.375)
    with pytest.raises(ConfigError, match="unknown aggregation"):
        aggregate([0.5], "max")


@pytest.mark.parametrize("aggregation", ["log_rank", "mean"])
def test_a_combined_score_is_unchanged_by_a_monotone_transform_of_one_part(aggregation):
    space = _space()
    first, second = _hash_value(1), _hash_value(2)
    plain = CombinedScorer.over([_Values("a", first), _Values("b", second)], ["a", "b"], space,
                                aggregation)
    squashed = CombinedScorer.over(
        [_Values("a", lambda t: math.exp(first(t) / 50) * 3 - 7), _Values("b", second)],
        ["a", "b"], space, aggregation)
    archs = [space.sample(np.random.default_rng(k)) for k in range(20)]
    assert [plain(a) for a in archs] == [squashed(a) for a in archs]
    assert len({plain(a) for a in archs}) > 5  # and it does vary


def test_the_reference_is_kept_and_reused_and_a_new_part_is_added(tmp_path):
    space = _space()
    calls = []

    def counted(text):
        calls.append(text)
        return len(text)

    CombinedScorer.over([_Values("a", counted), _Values("b", _hash_value(3))], ["a", "b"],
                        space, "log_rank", tmp_path)
    scored = len(calls)
    assert scored > 0 and (tmp_path / REFERENCE_FILE).is_file()
    CombinedScorer.over([_Values("a", counted), _Values("c", _hash_value(4))], ["a", "c"],
                        space, "log_rank", tmp_path)
    assert len(calls) == scored  # part a read back, not scored again
    table = pd.read_csv(tmp_path / REFERENCE_FILE)
    assert list(table.columns) == ["arch", "values:a", "values:b", "values:c"]


@pytest.mark.parametrize("text, parts, aggregation", [
    ("supernet+naswot+params", ("supernet", "naswot", "params"), "log_rank"),
    ("mean:naswot+proxy:synflow", ("naswot", "synflow"), "mean"),
    ("az_nas", ("az_expressivity", "az_progressivity", "az_trainability", "flops"), "log_rank"),
])
def test_combinations_parse_to_their_parts(text, parts, aggregation):
    setting = ScorerSetting.parse(text)
    assert setting.kind == "combined" and setting.aggregation == aggregation
    assert tuple(p.label for p in setting.parts) == parts
    assert ScorerSetting.parse(str(setting)) == setting
    assert setting.trains_supernet == ("supernet" in parts)


@pytest.mark.parametrize("text", ["supernet+", "naswot+nope", "mean:naswot", "max:naswot+params",
                                  "naswot+naswot", "supernet+oracle:x.csv"])
def test_a_malformed_combination_is_refused(text):
    with pytest.raises(ConfigError) as error:
        ScorerSetting.parse(text)
    assert "\n" not in str(error.value)


def test_an_unknown_scorer_on_the_command_line_is_one_line_naming_the_valid_ones(tmp_path,
                                                                                 capsys):
    assert main(["search", *TINY, "--scorer", "naswot+bogus", "--trials", "2",
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown scorer 'bogus'" in err and "naswot" in err and "supernet+naswot+params" in err
    assert not (tmp_path / "r").exists()


def _search(out, *extra):
    return main(["search", *TINY, "--scorer", "synflow+params+naswot", "--searcher", "evolution",
                 "--seed", "3", "--out", str(out), *extra])


def test_a_combined_search_records_each_part_and_resumes_bit_identically(tmp_path, monkeypatch):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert _search(whole, "--trials", "12") == 0
    score, calls = CombinedScorer.__call__, []

    def interrupted(self, arch):  # the search is stopped while scoring its 6th trial
        calls.append(arch)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return score(self, arch)

    monkeypatch.setattr(CombinedScorer, "__call__", interrupted)
    assert _search(resumed, "--trials", "12") == 130  # interrupted, as by Ctrl-C
    monkeypatch.setattr(CombinedScorer, "__call__", score)
    assert _search(resumed, "--trials", "12") == 0
    table = pd.read_csv(whole / "trials.csv")
    assert table.equals(pd.read_csv(resumed / "trials.csv").assign(
        wall_s=table["wall_s"]))  # durations aside
    for part in ("synflow", "params", "naswot"):
        assert {part, f"{part}_quantile"} <= set(table.columns)
    recomputed = table[[f"{p}_quantile" for p in ("synflow", "params", "naswot")]].apply(
        np.log).sum(axis=1)
    assert np.allclose(recomputed, table[COLUMN])
    best = (whole / "best.txt").read_text().strip()
    assert best == table.sort_values(COLUMN, ascending=False)["arch"].iloc[0]


def test_two_workers_give_the_same_values_as_one_process(tmp_path):
    alone, shared = tmp_path / "alone", tmp_path / "shared"
    assert _search(alone, "--trials", "10") == 0
    assert _search(shared, "--trials", "10", "--workers", "2") == 0
    one = pd.read_csv(alone / "trials.csv").set_index("arch")[COLUMN]
    two = pd.read_csv(shared / "trials.csv").set_index("arch")[COLUMN]
    common = one.index.intersection(two.index)
    assert len(two) == 10 and len(common) >= 1
    assert (one[common] == two[common]).all()
    assert pd.read_csv(alone / REFERENCE_FILE).equals(pd.read_csv(shared / REFERENCE_FILE))
    study = optuna.load_study(study_name="search",
                              storage=make_storage(f"journal:{shared}/study.journal"))
    assert all("parts" in t.user_attrs for t in study.trials if t.values)


def test_the_default_search_trains_nothing_and_trust_reports_the_parts(tmp_path, capsys):
    run = tmp_path / "default"
    assert main(["search", *TINY, "--trials", "8", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    setting = ScorerSetting.parse("default")
    assert not setting.trains_supernet and len(setting.parts) > 1
    assert not (run / "supernet.pt").exists()
    trials = pd.read_csv(run / "trials.csv")
    labels = [p.label for p in setting.parts]
    assert {COLUMN, *labels, *(f"{p}_quantile" for p in labels)} <= set(trials.columns)
    reference = pd.read_csv(run / REFERENCE_FILE)
    assert len(reference) == REFERENCE_SIZE and reference.shape[1] == 1 + len(labels)
    trust = json.loads((run / "trust.json").read_text())
    assert set(trust["part_agreement"]) == set(labels)  # the proxies' seeds drawn again
    assert all(0 <= share <= 1 for share in trust["part_agreement"].values())
    assert "the share each part ranks in its own top quarter" in out


def test_a_trained_supernet_joins_the_default_combination(tmp_path, capsys):
    trained = tmp_path / "trained"
    assert main(["supernet", *TINY, "--steps", "20", "--out", str(trained)]) == 0
    reused = tmp_path / "reused"
    assert main(["search", "--supernet", str(trained), "--trials", "6", "--device", "cpu",
                 "--out", str(reused)]) == 0
    trials = pd.read_csv(reused / "trials.csv")
    assert ScorerSetting.parse(DEFAULT_WITH_SUPERNET).parts[0].label == "supernet"
    assert trials["supernet"].between(0, 100).all() and COLUMN in trials
    assert json.loads((reused / "config.json").read_text())["settings"]["search"]["scorer"] == \
        DEFAULT_WITH_SUPERNET
    asked = tmp_path / "asked"  # a training option asks for a supernet: it joins the default
    assert main(["search", *TINY, "--steps", "20", "--trials", "3", "--out", str(asked)]) == 0
    assert (asked / "supernet.pt").is_file()
    out = capsys.readouterr().out  # the best's accuracy is the supernet's, its score the combination's
    accuracy = float(re.search(r"validation accuracy ([-\d.]+)%", out).group(1))
    best = pd.read_csv(asked / "trials.csv").sort_values(COLUMN).iloc[-1]
    assert accuracy == pytest.approx(best["supernet"], abs=0.005)
    assert f"score by {DEFAULT_WITH_SUPERNET}: {best[COLUMN]:.4g}" in out
    assert json.loads((asked / "config.json").read_text())["settings"]["search"]["scorer"] == \
        DEFAULT_WITH_SUPERNET
