"""A search run by several processes: `--storage URL --study NAME` (this process joins a shared
study) and `--workers K` (this process starts K local workers on one study and waits for them).
How they share one budget and survive a dead worker: `nas.distributed`.
"""
from __future__ import annotations

import multiprocessing
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from nas.config import SearchConfig, with_added_defaults
from nas.distributed import (SharedStudy, directions_of, fail_and_retry, file_checksum,
                             worker_label)
from nas.errors import ConfigError, NasError
from nas.objectives import parse_objectives
from nas.results import RunDir
from nas.search_run import SUPERNET_COLUMN, run_search, worker_seed, write_results
from nas.searchers import SEARCHERS, OptunaSearcher
from nas.supernet_run import SUPERNET_FILE, SearchProblem, supernet_run_dir
from search_spaces import Architecture

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


def study_identity(problem: SearchProblem, config: SearchConfig, run: RunDir | None,
                   column: str) -> dict[str, Any]:
    """What a shared study searches: a process that brings anything else is refused. The
    supernet is named by its checkpoint's checksum (paths differ between machines)."""
    identity = {"space": f"{problem.space.name} {problem.space.skeleton}",
                "objectives": config.objectives, "scorer": config.scorer.partition(":")[0],
                "column": column, "searcher": config.searcher}
    if config.proxy is not None:
        identity["scorer"] = f"proxy:{config.proxy} seed {config.seed}"
    elif config.oracle is not None:
        identity["scorer"] = f"oracle sha1:{file_checksum(Path(config.oracle))}"
    elif run is not None:
        identity["scorer"] = (f"supernet sha1:"
                              f"{file_checksum(supernet_run_dir(run.path) / SUPERNET_FILE)}")
    return identity


def check_shared(parallel: Parallel, problem: SearchProblem, config: SearchConfig,
                 column: str) -> None:
    """Before any training: refuse a storage that cannot be reached, or a study of another
    space, objectives or scorer (the supernet's checksum is checked once it exists)."""
    if not parallel.shared or config.trials == 0:
        return
    identity = study_identity(problem, config, None, column)
    if config.scorer == "supernet":
        identity.pop("scorer")
    if parallel.storage is not None:  # a journal in a new run directory holds no study yet
        SharedStudy(parallel.storage, parallel.study, identity,
                    directions_of(parse_objectives(config.objectives))).check(partial=True)


def search_in(run: RunDir, problem: SearchProblem, scorer: Callable[[Architecture], float],
              config: SearchConfig, column: str, parallel: Parallel, device: str
              ) -> tuple[Architecture, float] | None:
    """The search of a run, alone (SQLite), in a shared study, or by K local workers."""
    if not parallel.shared:
        return run_search(run, problem, scorer, config, column)
    shared = SharedStudy(parallel.url(run), parallel.study,
                         study_identity(problem, config, run, column),
                         directions_of(parse_objectives(config.objectives)))
    if config.trials == 0:  # create the study, for workers to join without racing to create it
        shared.open(SEARCHERS.get(config.searcher)(config.seed))
        return None
    if parallel.workers == 1:  # one of many processes, anywhere: a seed of its own
        worker = zlib.crc32(worker_label().encode()) % 100_000
        return run_search(run, problem, scorer, config, column, shared=shared, worker=worker)
    study = shared.open(SEARCHERS.get(config.searcher)(config.seed))  # created before workers
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
    return write_results(run, problem, searcher, config, column)


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
        problem, scorer, config, column = scorer_of_run(run_path, device)
        run_search(RunDir(run_path), problem, scorer, config, column, shared=shared,
                   worker=worker, finish=False)
    except NasError as error:  # one line, as the command's own errors
        print(f"nas search worker {worker}: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def scorer_of_run(run_path: str | Path, device: str
                  ) -> tuple[SearchProblem, Callable[[Architecture], float], SearchConfig, str]:
    """A search run's problem, scorer, search settings and score column, rebuilt from its
    config.json (what each worker process does)."""
    from nas.config import DataConfig, SpaceConfig
    from nas.supernet_run import build_problem, load_supernet

    settings = with_added_defaults(RunDir(run_path).settings())
    config = SearchConfig(**settings["search"])
    if config.scorer == "supernet":
        trained = load_supernet(run_path, device)
        return trained.problem, trained.score, config, SUPERNET_COLUMN
    problem = build_problem(SpaceConfig(**settings["space"]), DataConfig(**settings["data"]),
                            config.seed, device)
    scorer, column = training_free_scorer(problem, config)
    return problem, scorer, config, column


def training_free_scorer(problem: SearchProblem, config: SearchConfig
                         ) -> tuple[Callable[[Architecture], float], str]:
    """The scorer of a search that trains nothing, and its score column: a ground-truth table
    (`--oracle`), or a proxy on fresh models seeded by the search seed."""
    from nas.oracle import TableOracle
    from nas.ranking.proxies import ProxyScorer

    if config.oracle is not None:
        oracle = TableOracle(config.oracle, problem.space, config.oracle_column)
        return oracle, oracle.column
    return ProxyScorer(problem, config.proxy, config.seed), config.proxy


__all__ = ["Parallel", "check_shared", "scorer_of_run", "search_in", "training_free_scorer",
           "worker_seed"]
