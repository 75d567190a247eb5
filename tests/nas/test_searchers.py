"""Optuna searchers behind the Sampler interface."""
from __future__ import annotations

import optuna

from nas.searchers import SEARCHERS, OptunaSearcher, open_study
from search_spaces import get_space


def test_ask_and_tell_round_trip_through_the_study(tmp_path):
    space = get_space("nb201")
    searcher = OptunaSearcher(space, open_study(str(tmp_path / "s.db"), "s", SEARCHERS.get("tpe")(0)))
    archs = searcher.ask(3)
    for value, arch in enumerate(archs):
        searcher.tell(arch, float(value))
    done = searcher.completed()
    assert [t.user_attrs["arch"] for t in done] == [str(a) for a in archs]
    assert [t.value for t in done] == [0.0, 1.0, 2.0]
    assert searcher.architecture_of(done[1].params) == archs[1]


def test_same_seed_proposes_the_same_architectures(tmp_path):
    def proposals(name):
        study = open_study(str(tmp_path / f"{name}.db"), "s", SEARCHERS.get("random")(7))
        return OptunaSearcher(get_space("darts"), study).ask(5)

    assert proposals("a") == proposals("b")


def test_a_trial_killed_while_asking_is_completed_on_resume(tmp_path):
    """`study.ask` stores parameters one at a time; a kill can leave some decisions unset."""
    path, space = str(tmp_path / "s.db"), get_space("nb201")
    first = OptunaSearcher(space, open_study(path, "s", optuna.samplers.RandomSampler(0)))
    partial = first.study.ask()
    partial.suggest_categorical("1<-0", list(first.distributions["1<-0"].choices))
    resumed = OptunaSearcher(space, open_study(path, "s", optuna.samplers.RandomSampler(1)))
    (number, arch), = resumed.unfinished()
    assert number == partial.number and arch["1<-0"] == partial.params["1<-0"]
    resumed.finish(number, 50.0)
    (trial,) = resumed.completed()
    assert trial.user_attrs["arch"] == str(arch) and trial.value == 50.0
