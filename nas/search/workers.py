"""A search run by several processes: `--storage URL --study NAME` (this process joins a shared
study) and `--workers K` (this process starts K local workers on one study and waits for them).
How they share one budget and survive a dead worker: `nas.search.shared_study`.
"""
from __future__ import annotations

import multiprocessing
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.config import RunRecord, SearchConfig
from nas.errors import ConfigError, NasError
from nas.problem import SearchProblem, build_problem
from nas.runs import RunDir
from nas.scorers import Scorer, build_scorer
from nas.search.loop import SearchOutcome, run_search, write_results
from nas.search.objectives import parse_objectives
from nas.search.shared_study import SharedStudy, directions_of, fail_and_retry, worker_label
from nas.searchers import SEARCHERS, OptunaSearcher

JOURNAL_FILE = "study.journal"


@dataclass(frozen=True)
class Parallel:
    """Where the study lives and how many local processes search it."""

    storage: str | None = None  # None: SQLite in the run directory (one process)
    study: str = "search"
    workers: int = 1

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"--workers takes a number of processes >= 1, got {self.workers}")
        if self.storage is not None and self.storage.startswith(("journal:", "sqlite:")):
            raise ConfigError(f"--storage {self.storage}: a file storage cannot tell a dead "
                              f"process's trial from a slow one; for several processes on this "
                              f"machine use --workers K (it watches its workers), across "
                              f"machines postgresql://USER@HOST/DB")
        if not self.study.strip():
            raise ConfigError("--study takes a non-empty study name")

    @property
    def shared(self) -> bool:
        return self.storage is not None or self.workers > 1

    def url(self, run: RunDir) -> str:
        return self.storage if self.storage is not None else f"journal:{run / JOURNAL_FILE}"


def study_identity(problem: SearchProblem, config: SearchConfig, scorer: Scorer | None,
                   column: str) -> dict[str, Any]:
    """What a shared study searches: a process that brings anything else is refused. The
    scorer names itself (a supernet by its checkpoint's checksum: paths differ between
    machines); `scorer` None leaves it out, for a check before the supernet is trained."""
    identity = {"space": f"{problem.space.name} {problem.space.skeleton}",
                "objectives": config.objectives, "column": column, "searcher": config.searcher}
    if config.constraints:  # only then: studies recorded before constraints existed still match
        identity["constraints"] = list(config.constraints)
    if scorer is not None:
        identity["scorer"] = scorer.identity()
    return identity


def check_shared(parallel: Parallel, problem: SearchProblem, config: SearchConfig,
                 scorer: Scorer | None, column: str) -> None:
    """Before any training: refuse a storage that cannot be reached, or a study of another
    space, objectives or scorer (a supernet, not trained yet, is checked once it exists)."""
    if not parallel.shared or config.trials == 0:
        return
    if parallel.storage is not None:  # a journal in a new run directory holds no study yet
        SharedStudy(parallel.storage, parallel.study, study_identity(problem, config, scorer, column),
                    directions_of(parse_objectives(config.objectives))).check(partial=True)


def search_in(run: RunDir, problem: SearchProblem, scorer: Scorer, config: SearchConfig,
              parallel: Parallel, device: str) -> SearchOutcome | None:
    """The search of a run, alone (SQLite), in a shared study, or by K local workers."""
    make_sampler = SEARCHERS.get(config.searcher)
    if not parallel.shared:
        return run_search(run, problem, scorer, config, make_sampler=make_sampler)
    shared = SharedStudy(parallel.url(run), parallel.study,
                         study_identity(problem, config, scorer, scorer.column),
                         directions_of(parse_objectives(config.objectives)))
    if config.trials == 0:  # create the study, for workers to join without racing to create it
        shared.open(make_sampler(config.seed))
        return None
    if parallel.workers == 1:  # one of many processes, anywhere: a seed of its own
        worker = zlib.crc32(worker_label().encode()) % 100_000
        return run_search(run, problem, scorer, config, shared=shared, worker=worker,
                          make_sampler=make_sampler)
    study = shared.open(make_sampler(config.seed))  # created before workers
    # Trials left running by an earlier, killed run of these workers belong to nobody now.
    if parallel.storage is None and fail_and_retry(study, None):
        print("search: trials a killed earlier run left running are queued again")
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker_main, name=f"nas-search-worker-{k}",
                                 args=(str(run.path), shared, k, device))
                 for k in range(parallel.workers)]
    for process in processes:
        process.start()
    _watch(study, processes)
    searcher = OptunaSearcher(problem.space, study)
    if not searcher.completed():
        raise ConfigError(f"no worker completed a trial (exit codes "
                          f"{[p.exitcode for p in processes]}); see the messages above")
    return write_results(run, problem, searcher, config, scorer.column)


def _watch(study, processes: list, poll_s: float = 0.5) -> None:
    """Wait for the workers; a worker that dies has its running trials failed and re-queued
    once, for a live worker to take (the journal file has no heartbeats to do it)."""
    handled: set[int] = set()
    while True:
        alive = False
        for process in processes:
            if process.is_alive():
                alive = True
            elif process.pid not in handled:
                handled.add(process.pid)
                if process.exitcode != 0:
                    retried = fail_and_retry(study, worker_label(process.pid))
                    if retried:
                        print(f"search: worker {process.pid} died (exit {process.exitcode}); "
                              f"trial(s) {retried} queued again")
        if not alive:
            return
        time.sleep(poll_s)


def _worker_main(run_path: str, shared: SharedStudy, worker: int, device: str) -> None:
    try:
        problem, scorer, config = scorer_of_run(run_path, device)
        run_search(RunDir(run_path), problem, scorer, config, shared=shared, worker=worker,
                   finish=False)
    except NasError as error:  # one line, as the command's own errors
        print(f"nas search worker {worker}: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def scorer_of_run(run_path: str | Path, device: str
                  ) -> tuple[SearchProblem, Scorer, SearchConfig]:
    """A search run's problem, scorer and search settings, rebuilt from its config.json (what
    each worker process does)."""
    record = RunRecord.from_dict(RunDir(run_path).settings())
    setting = record.search.scorer_setting
    if setting.trains_supernet:
        from nas.training.supernet import load_supernet

        trained = load_supernet(run_path, device)
        return trained.problem, build_scorer(setting, trained.problem, trained=trained,
                                             reference_dir=run_path), record.search
    problem = build_problem(record.space, record.data, record.search.seed, device)
    return problem, build_scorer(setting, problem, record.search.seed, reference_dir=run_path), \
        record.search


__all__ = ["Parallel", "check_shared", "scorer_of_run", "search_in"]
