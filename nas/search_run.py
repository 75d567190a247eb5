"""The search loop: ask the searcher, score with the supernet's method, tell; resumable from `study.db`.

Trials are the study's: a re-run with the same settings continues to the `trials` total, first
finishing any trial a killed run had asked for but not told. Scores are cached by canonical
string, so a searcher that proposes an architecture twice costs one evaluation.
"""
from __future__ import annotations

from typing import Callable

import pandas as pd

from nas.config import SearchConfig
from nas.results import RunDir, atomic_write_csv, atomic_write_text
from nas.searchers import SEARCHERS, OptunaSearcher, open_study
from nas.supernet_run import SearchProblem
from search_spaces import Architecture
from supernets.progress import Progress

TRIALS_FILE = "trials.csv"
SUPERNET_COLUMN = "val_accuracy"  # trials.csv's score column when a supernet scores
BEST_FILE = "best.txt"


class _Costs:
    """Parameters and FLOPs per architecture, computed once each."""

    def __init__(self, problem: SearchProblem) -> None:
        self.space, self._cache = problem.space, {}

    def __call__(self, arch: Architecture) -> tuple[float, float]:
        key = str(arch)
        if key not in self._cache:
            self._cache[key] = (self.space.params_m(arch), self.space.flops_m(arch))
        return self._cache[key]


def trials_table(searcher: OptunaSearcher, costs: _Costs, column: str) -> pd.DataFrame:
    rows = []
    for trial in searcher.completed():
        arch = searcher.space.parse(trial.user_attrs["arch"])
        params_m, flops_m = costs(arch)
        duration = trial.duration.total_seconds() if trial.duration else float("nan")
        rows.append({"trial": trial.number, "arch": str(arch), column: trial.value,
                     "params_m": params_m, "flops_m": flops_m, "wall_s": duration})
    return pd.DataFrame(rows, columns=["trial", "arch", column, "params_m", "flops_m", "wall_s"])


def run_search(run: RunDir, problem: SearchProblem, scorer: Callable[[Architecture], float],
               config: SearchConfig, column: str = SUPERNET_COLUMN
               ) -> tuple[Architecture, float] | None:
    """Search up to `config.trials` trials with the searcher (an Optuna sampler) through the
    run's study, scoring each with `scorer` (a supernet's method, or a training-free proxy);
    write trials.csv (scores in `column`) and best.txt; return the best."""
    if config.trials == 0:
        return None
    study = open_study(str(run / "study.db"), "search", SEARCHERS.get(config.searcher)(config.seed))
    searcher = OptunaSearcher(problem.space, study)
    cache = {t.user_attrs["arch"]: float(t.value) for t in searcher.completed()}

    def score(arch: Architecture) -> float:
        if str(arch) not in cache:
            cache[str(arch)] = scorer(arch)
        return cache[str(arch)]

    for number, arch in searcher.unfinished():
        searcher.finish(number, score(arch))
    costs, log_scalar = _Costs(problem), run.tensorboard()
    done = len(searcher.completed())
    best = max((t.value for t in searcher.completed()), default=float("-inf"))
    try:
        with Progress(config.trials, initial=min(done, config.trials), desc="search",
                      unit="trial") as bar:
            for number in range(done, config.trials):
                (arch,) = searcher.ask(1)
                value = score(arch)
                searcher.tell(arch, value)
                best = max(best, value)
                log_scalar(f"search/{column}", value, number)
                log_scalar(f"search/best_{column}", best, number)
                bar.update(1, best=f"{best:.4g}")
                if number % 10 == 9:
                    atomic_write_csv(run / TRIALS_FILE, trials_table(searcher, costs, column))
    finally:
        log_scalar.close()
    table = trials_table(searcher, costs, column)
    atomic_write_csv(run / TRIALS_FILE, table)
    top = table.sort_values([column, "trial"], ascending=[False, True]).iloc[0]
    atomic_write_text(run / BEST_FILE, f"{top['arch']}\n")
    return problem.space.parse(top["arch"]), float(top[column])
