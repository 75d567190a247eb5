"""Hard constraints in search (`--constraint`): parsing and recording, constraints no
architecture meets refused before training, every searcher spending its trials on feasible
architectures only (through resume, a killed run's trial, a shared study and a run of
rejections), TPE learning the feasible region, and each space's cheapest architecture."""
from __future__ import annotations

import json
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from nas import api
from nas.cli import main
from nas.config import DataConfig, RunRecord, SearchConfig, SpaceConfig
from nas.errors import ConfigError
from nas.problem import build_problem
from nas.runs import RunDir
from nas.search.constraints import (CONSTRAINTS_ATTR, INFEASIBLE_ATTR, LATENCY_ATTR, Constraint,
                                    verdict)
from nas.search.loop import run_search
from nas.search.shared_study import live_rank, make_storage
from nas.searchers import EPNAS, SEARCHERS, OptunaSearcher, open_study
from search_spaces import Skeleton, get_space
from tests.nas.synthetic_space import CHOICES, DECISIONS
from tests.nas.synthetic_space import objective as synthetic_objective

TINY = ["--space", "nb201", "--width", "4", "--cells", "1", "--device", "cpu"]
NB201_TABLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nb201.csv.gz"
needs_table = pytest.mark.skipif(not NB201_TABLE.is_file(),
                                 reason="../shared/data/nb201.csv.gz absent")


@pytest.fixture(scope="module")
def problem():
    return build_problem(SpaceConfig("nb201", 4, 1), DataConfig(), 0, "cpu")


@pytest.fixture(scope="module")
def limit(problem) -> float:
    """The FLOPs of a cell with one nor_conv_1x1 and free ops (none, skip, pool) elsewhere: NB201
    edges cost alike and a 3x3 conv 9 1x1s, so the limit keeps the cells with no 3x3 and at
    most one 1x1, 3**6 + 6 * 3**5 = 2,187 of 15,625 (14%; the table's count at its level)."""
    space = problem.space
    return space.flops_m(space.architecture(["nor_conv_1x1"] + ["skip_connect"] * 5))


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def _study(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")


def _scorer(arch) -> float:
    """A deterministic score with no relation to cost, so searchers roam the space."""
    return zlib.crc32(str(arch).encode()) % 1000 / 10


_scorer.column = "score"
_scorer.parts = lambda arch: {}


def _check_trials(study: optuna.Study, space, limit: float, trials: int) -> list:
    """Every completed trial meets the limit, every pruned one breaks it; returns the pruned."""
    states = Counter(t.state for t in study.trials)
    assert states[TrialState.COMPLETE] == trials
    assert set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}
    for t in study.trials:
        flops = space.flops_m(space.parse(t.user_attrs["arch"]))
        assert t.user_attrs[CONSTRAINTS_ATTR] == [pytest.approx(flops - limit)]
        if t.state == TrialState.COMPLETE:
            assert flops <= limit and INFEASIBLE_ATTR not in t.user_attrs
        else:
            assert flops > limit and t.user_attrs[INFEASIBLE_ATTR] is True
    return [t for t in study.trials if t.state == TrialState.PRUNED]


# ---- parsing and recording ------------------------------------------------------------------
def test_a_constraint_reads_as_pick_does_and_a_bad_one_names_the_valid_form(tmp_path, capsys):
    assert Constraint.parse(" flops <= 50 ") == Constraint("flops", 50.0)
    assert SearchConfig(constraints=["params<=0.5", "latency<=2"]).constraints == \
        ("params<=0.5", "latency<=2.0")
    assert SearchConfig(constraints="flops<=1e1").constraints == ("flops<=10.0",)
    for bad in ("flops<50", "size<=3", "flops<=-1", "flops<=0", "flops<=x", "flops<=1e999",
                "accuracy", ""):
        with pytest.raises(ConfigError, match=r"--constraint takes COST<=LIMIT .* got"):
            Constraint.parse(bad)
    out = tmp_path / "x"
    assert main(["search", *TINY, "--scorer", "proxy:params", "--constraint", "flops<=50",
                 "--constraint", "flops<50", "--out", str(out)]) == 2
    err = _error_line(capsys)
    assert "--constraint takes COST<=LIMIT" in err and "'flops<50'" in err
    assert not out.exists()


def test_runs_record_their_constraints_and_older_runs_read_as_unconstrained():
    record = RunRecord("search", SpaceConfig("nb201", 4, 1), DataConfig(),
                       search=SearchConfig(constraints=("flops<=50", "params<=1")))
    settings = json.loads(json.dumps(record.to_dict()))
    assert settings["search"]["constraints"] == ["flops<=50.0", "params<=1.0"]
    assert RunRecord.from_dict(settings) == record
    del settings["search"]["constraints"]  # a run recorded before constraints existed
    assert RunRecord.from_dict(settings).search.constraints == ()


# ---- refused before training ----------------------------------------------------------------
def test_constraints_no_architecture_meets_are_refused_before_training(problem, tmp_path,
                                                                        capsys):
    space, out = problem.space, tmp_path / "run"
    low, high = space.flops_m(space.smallest()), space.flops_m(space.largest())
    # A supernet search: refused before the supernet is trained or the run directory made.
    assert main(["search", *TINY, "--epochs", "1", "--scorer", "supernet",
                 "--constraint", "flops<=0.001", "--out", str(out)]) == 2
    assert _error_line(capsys) == (f"nas search: error: no architecture of nb201 (C=4, N=1) has "
                                   f"flops<=0.001: its FLOPs range from {low:.4g} to "
                                   f"{high:.4g} M")
    assert not out.exists()
    # Each constraint may be met alone while the others are not; all must be.
    assert main(["search", *TINY, "--scorer", "proxy:params", "--constraint", "flops<=1",
                 "--constraint", "params<=1e-6", "--out", str(out)]) == 2
    assert "has params<=1e-06: its parameters range from" in _error_line(capsys)
    assert main(["search", *TINY, "--scorer", "proxy:params", "--constraint", "latency<=1e-6",
                 "--out", str(out)]) == 2
    assert "latency<=1e-06" in _error_line(capsys)
    # A method that derives its architecture has no searcher to steer.
    assert main(["search", *TINY, "--epochs", "1", "--method", "darts", "--constraint",
                 "flops<=1", "--out", str(out)]) == 2
    assert "darts derives its architecture" in _error_line(capsys)
    assert not out.exists()
    # The Python API takes them the same way.
    with pytest.raises(ConfigError, match="no architecture of nb201"):
        api.search(SpaceConfig("nb201", 4, 1), search_config=SearchConfig(
            scorer="proxy:params", constraints=("flops<=0.001",)), out=out)
    assert not out.exists()


# ---- every searcher spends its trials on feasible architectures -----------------------------
@pytest.mark.parametrize("searcher", sorted(SEARCHERS.names()))
def test_every_searcher_scores_feasible_architectures_only(searcher, problem, limit, tmp_path):
    out = tmp_path / searcher
    assert main(["search", *TINY, "--scorer", "proxy:params", "--searcher", searcher,
                 "--trials", "8", "--constraint", f"flops<={limit!r}", "--out", str(out)]) == 0
    space, study = problem.space, _study(out)
    pruned = _check_trials(study, space, limit, 8)
    if searcher == "random":  # 14% of the space is feasible: most draws are rejected
        assert len(pruned) > 8
    if searcher in ("tpe", "nsga2"):  # Optuna's own record, which TPE learns from
        for t in study.trials:
            assert list(t.system_attrs["constraints"]) == t.user_attrs[CONSTRAINTS_ATTR]
    table = pd.read_csv(out / "trials.csv")
    completed = [t.number for t in study.trials if t.state == TrialState.COMPLETE]
    assert table["trial"].tolist() == completed and (table["flops_m"] <= limit).all()
    best = (out / "best.txt").read_text().strip()
    assert space.flops_m(space.parse(best)) <= limit


def test_a_latency_constraint_is_measured_once_and_shown_in_the_trials(tmp_path):
    out = tmp_path / "latency"
    assert main(["search", *TINY, "--scorer", "proxy:params", "--searcher", "random",
                 "--trials", "3", "--constraint", "latency<=10000", "--out", str(out)]) == 0
    table = pd.read_csv(out / "trials.csv")
    recorded = {t.user_attrs["arch"]: t.user_attrs[LATENCY_ATTR] for t in _study(out).trials}
    assert table["latency_ms"].tolist() == [recorded[a] for a in table["arch"]]
    assert (table["latency_ms"] > 0).all()


def test_a_run_of_rejections_stops_the_search_in_one_line(problem, tmp_path, capsys,
                                                            monkeypatch):
    monkeypatch.setattr("nas.search.constraints.MAX_REJECTIONS", 3)
    cheapest = problem.space.flops_m(problem.space.smallest())  # 3**6 of 15,625 cells: 4.7%
    assert main(["search", *TINY, "--scorer", "proxy:params", "--searcher", "random",
                 "--trials", "5", "--constraint", f"flops<={cheapest!r}",
                 "--out", str(tmp_path / "x")]) == 2
    assert "the searcher proposed 3 architectures in a row that break flops<=" in \
        _error_line(capsys)


# ---- resume, a killed run's trial, shared studies -------------------------------------------
@pytest.mark.parametrize("searcher", ["evolution", "epnas", "random"])
def test_a_resumed_constrained_search_continues_with_feasible_trials(searcher, problem, limit,
                                                                     tmp_path):
    def config(trials: int) -> SearchConfig:
        return SearchConfig(searcher=searcher, trials=trials, constraints=(f"flops<={limit!r}",))

    def search(name: str, *budgets: int) -> optuna.Study:
        run = RunDir(tmp_path / name)
        run.open({"kind": "test"})
        for trials in budgets:
            run_search(run, problem, _scorer, config(trials))
        return _study(run.path)

    resumed = search("resumed", 12, 30)
    _check_trials(resumed, problem.space, limit, 30)
    if searcher != "random":  # draws keyed by trial number: the same proposals, rejected or not
        straight = search("straight", 30)
        assert [(t.state, t.params) for t in resumed.trials] == \
            [(t.state, t.params) for t in straight.trials]


def test_epnas_expands_only_the_configurations_its_rounds_scored():
    """EPNAS's first round tries each choice of x0; the one rejected (pruned) is no parent."""
    def objective(trial: optuna.Trial) -> float:
        value = synthetic_objective(trial)
        if trial.params["x0"] == "a":
            raise optuna.TrialPruned()  # as the loop prunes a proposal that breaks a limit
        return value

    study = optuna.create_study(direction="maximize", sampler=EPNAS(seed=0))
    names = [f"x{i}" for i in range(DECISIONS)]  # the space's order, as the loop records it
    study.set_user_attr("decisions", names)
    study.set_user_attr("choices", {name: CHOICES for name in names})
    study.optimize(objective, n_trials=4 + 15)  # round 0 (x0's 4 choices), round 1 (K = 15)
    assert sorted(t.params["x0"] for t in study.trials[:4]) == CHOICES
    assert {t.params["x0"] for t in study.trials[4:]} == {"b", "c", "d"}


def test_a_killed_runs_unfinished_trial_is_judged_before_it_is_scored(problem, limit, tmp_path):
    space, run = problem.space, RunDir(tmp_path / "killed")
    run.open({"kind": "test"})
    study = open_study(str(run / "study.db"), "search", optuna.samplers.RandomSampler(0))
    searcher = OptunaSearcher(space, study)
    for arch in (space.largest(), space.smallest()):  # asked, never told: as a kill leaves them
        study.enqueue_trial({name: str(value) for name, value in arch.as_dict().items()})
        study.ask(searcher.distributions)
    scored = []

    def scorer(arch) -> float:
        scored.append(str(arch))
        return 1.0

    scorer.column, scorer.parts = "score", lambda arch: {}
    run_search(run, problem, scorer,
               SearchConfig(searcher="random", trials=3, constraints=(f"flops<={limit!r}",)))
    trials = _study(run.path).trials
    assert (trials[0].state, trials[1].state) == (TrialState.PRUNED, TrialState.COMPLETE)
    assert str(space.largest()) not in scored and scored[0] == str(space.smallest())
    _check_trials(_study(run.path), space, limit, 3)


def test_a_workers_rank_skips_rejected_proposals_and_waits_for_unjudged_ones():
    study = optuna.create_study()
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    study.tell(study.ask(dist), 1.0)  # trial 0: takes a share of the budget
    rejected = study.ask(dist)  # trial 1: a rejected proposal takes none
    rejected.set_user_attr(INFEASIBLE_ATTR, True)
    rejected.set_user_attr(CONSTRAINTS_ATTR, [1.0])
    study.tell(rejected, state=TrialState.PRUNED)
    pending = study.ask(dist)  # trial 2: asked, not judged yet; it will be rejected
    scored = study.ask(dist)  # trial 3: judged feasible, still being scored
    scored.set_user_attr(CONSTRAINTS_ATTR, [-1.0])

    def judge() -> None:
        time.sleep(0.3)
        pending.set_user_attr(INFEASIBLE_ATTR, True)
        pending.set_user_attr(CONSTRAINTS_ATTR, [2.0])

    thread = threading.Thread(target=judge)
    thread.start()
    started = time.perf_counter()
    assert live_rank(study, 4, verdict) == 3  # trials 0 and 3 are ahead of trial 4
    assert time.perf_counter() - started >= 0.25  # it waited for trial 2's verdict
    thread.join()
    assert [verdict(t) for t in study.trials] == [None, False, False, True]


def test_a_trial_never_judged_stops_holding_up_the_rank(monkeypatch):
    """A worker killed between ask and verdict, on a storage without heartbeats: its trial
    never fails, so after the grace period it counts as to be scored rather than hang all."""
    import nas.search.shared_study as shared_study

    monkeypatch.setattr(shared_study, "UNJUDGED_GRACE_S", 0.2)
    study = optuna.create_study()
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    study.ask(dist)  # trial 0: asked, never judged
    done = []
    thread = threading.Thread(target=lambda: done.append(live_rank(study, 1, verdict)),
                              daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert done == [2]  # trial 0 counted ahead of trial 1


def test_workers_sharing_a_study_spend_its_budget_on_feasible_architectures(problem, limit,
                                                                            tmp_path):
    out = tmp_path / "shared"
    assert main(["search", *TINY, "--scorer", "proxy:params", "--searcher", "random",
                 "--trials", "8", "--workers", "2", "--constraint", f"flops<={limit!r}",
                 "--out", str(out)]) == 0
    study = optuna.load_study(study_name="search",
                              storage=make_storage(f"journal:{out}/study.journal"))
    states = Counter(t.state for t in study.trials)
    assert states[TrialState.COMPLETE] == 8 and states[TrialState.PRUNED] > 0
    for t in study.trials:  # failed: only a worker's ask past the full budget
        assert t.state != TrialState.FAIL or t.user_attrs.get("over_budget")
        if t.state == TrialState.COMPLETE:
            assert problem.space.flops_m(problem.space.parse(t.user_attrs["arch"])) <= limit
    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 8 and (table["flops_m"] <= limit).all()


# ---- TPE learns the feasible region ---------------------------------------------------------
@needs_table
def test_tpe_with_the_constraint_values_proposes_fewer_infeasible_cells_than_random():
    from nas.reports.constrained_search import search_once

    space = get_space("nb201")
    frame = pd.read_csv(NB201_TABLE)
    archs = [str(space.parse(a)) for a in frame["arch"]]
    accuracy = dict(zip(archs, frame["cifar10_test"]))
    flops = dict(zip(archs, frame["flops_m"]))
    limit = float(np.quantile(frame["flops_m"], 0.2, method="higher"))  # 22% of the cells
    for seed in (0, 1):
        runs = {name: search_once(name, "constrained", seed, 60, accuracy, flops, limit)
                for name in ("tpe", "random")}
        # Over the later 30 trials random rejects about 0.78 / 0.22 = 3.5 per trial.
        assert runs["tpe"]["rejected_second_half"] < runs["random"]["rejected_second_half"] / 2


# ---- each space's cheapest architecture -----------------------------------------------------
@needs_table
def test_nb201s_smallest_and_largest_bound_all_15625_cells_of_the_table():
    space = get_space("nb201")  # the default skeleton: the table's CIFAR-10 network
    table = pd.read_csv(NB201_TABLE)
    for row in table.sample(4, random_state=0).itertuples():  # the table counts as the space
        arch = space.parse(row.arch)
        assert (space.params_m(arch), space.flops_m(arch)) == \
            pytest.approx((row.params_m, row.flops_m))
    assert space.params_m(space.smallest()) == pytest.approx(table["params_m"].min())
    assert space.flops_m(space.smallest()) == pytest.approx(table["flops_m"].min())
    assert space.params_m(space.largest()) == pytest.approx(table["params_m"].max())
    assert space.flops_m(space.largest()) == pytest.approx(table["flops_m"].max())


@pytest.mark.parametrize("name, skeleton", [("darts", Skeleton(3, 10, 8, width=4, cells=3)),
                                            ("mobilenet", Skeleton(3, 10, 32, width=8, cells=2))])
def test_no_sampled_architecture_is_cheaper_than_smallest_or_dearer_than_largest(name,
                                                                                  skeleton):
    space = get_space(name, skeleton)
    rng = np.random.default_rng(0)
    cheapest, dearest = space.smallest(), space.largest()
    # Random architectures, and every change of one decision of the extremes: a cheaper choice
    # for any decision would show there.
    archs = [space.sample(rng) for _ in range(20)]
    for extreme in (cheapest, dearest):
        for i, decision in enumerate(space.decisions):
            for choice in decision.choices:
                archs.append(space.architecture(extreme.values[:i] + (choice,)
                                                + extreme.values[i + 1:]))
    low = (space.params_m(cheapest), space.flops_m(cheapest))
    high = (space.params_m(dearest), space.flops_m(dearest))
    for arch in set(archs):
        params_m, flops_m = space.params_m(arch), space.flops_m(arch)
        assert low[0] <= params_m <= high[0] and low[1] <= flops_m <= high[1], str(arch)
