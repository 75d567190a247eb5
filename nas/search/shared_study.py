"""Many search processes on one Optuna study: `--storage URL --study NAME` and `--workers K`.

One process searches through an SQLite file in its run directory (the default). Several share a
study in a storage that is safe for it: PostgreSQL or MySQL (`postgresql://user@host/db`, for
processes on any machines), or Optuna's journal file, which `--workers K` keeps in its run
directory unless `--storage` is given. Independent processes are not offered a file storage:
without heartbeats they could not tell a dead process's trial from a slow one.

- **One budget.** `--trials N` counts the study's trials, not a worker's: after asking, a worker
  ranks its trial among the study's trials that have not failed; one ranked past N is marked
  failed (`over_budget`) and the worker stops. So exactly N trials complete, whatever the race.
  Under `--constraint` a proposal that breaks one is pruned before it is ranked and ranks no
  other trial: a worker ranks its trial once every running trial below it has been judged.
- **Dead workers.** On an RDB storage each trial's worker records a heartbeat every
  `HEARTBEAT_S` seconds from the moment it asks until it tells; before asking, workers fail trials whose heartbeat is
  older than `GRACE_S` (`optuna.storages.fail_stale_trials`: with ask/tell nobody else does), and
  the stale-trial callback re-queues each one once (`max_retry=1`), so a killed worker's trial
  is retried exactly once, by whichever worker asks next. The journal file has no heartbeats;
  there the `--workers` parent, which sees its children exit, does the same for a dead child's
  trials.
- **One study, one search.** The study records what it searches (space and skeleton,
  objectives, scorer, the supernet's checksum); a process that brings other settings gets a
  one-line error before it touches the study. Create a study before starting many workers at
  once (one `nas search ... --trials 0`, or `--workers`, which creates it first): concurrent
  creation races in Optuna.
"""
from __future__ import annotations

import os
import socket
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.errors import ConfigError

HEARTBEAT_S, GRACE_S = 5, 20
# Heartbeats and the retry callback are marked experimental in Optuna; they are what a shared
# study relies on here, and the warning would repeat at every trial.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
WORKER_ATTR, OVER_BUDGET_ATTR = "worker", "over_budget"


def worker_label(pid: int | None = None) -> str:
    """How a trial names the process that runs it: host and process id (this one's by default)."""
    return f"{socket.gethostname()}:{pid if pid is not None else os.getpid()}"


def _retry_once() -> Callable[[optuna.Study, FrozenTrial], None]:
    # Renamed in Optuna 4.9 (RetryFailedTrialCallback -> RetryHeartbeatStaleTrialCallback).
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or \
        optuna.storages.RetryFailedTrialCallback
    return retry(max_retry=1)


def make_storage(url: str, heartbeat_s: int = HEARTBEAT_S, grace_s: int = GRACE_S
                 ) -> optuna.storages.BaseStorage:
    """An Optuna storage for a `--storage` value; a one-line error when it cannot be used."""
    try:
        if url.startswith("journal:"):
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            path = Path(url[len("journal:"):])
            if not path.parent.is_dir():
                raise ConfigError(f"--storage {url}: no directory {path.parent}")
            return JournalStorage(JournalFileBackend(str(path)))
        if url.startswith("sqlite:"):
            return optuna.storages.RDBStorage(url)
        if "://" not in url:
            raise ConfigError(f"--storage takes postgresql://USER@HOST/DB (or another database "
                              f"URL) or journal:PATH; got {url!r}")
        import inspect
        stale = ("heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in
                 inspect.signature(optuna.storages.RDBStorage).parameters
                 else "failed_trial_callback")
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=heartbeat_s, grace_period=grace_s,
            engine_kwargs={"pool_pre_ping": True},  # idle connections get dropped (Optuna #5600)
            **{stale: _retry_once()})
    except ConfigError:
        raise
    except ModuleNotFoundError as error:
        raise ConfigError(f"--storage {url}: the database driver is not installed "
                          f"({error.name}; for PostgreSQL: pip install psycopg2-binary)") from None
    except Exception as error:  # sqlalchemy's, the driver's: one line, not a traceback
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"cannot use --storage {url}: {first}") from None


@dataclass(frozen=True)
class SharedStudy:
    """A study several processes search together (module doc)."""

    url: str
    name: str
    identity: dict[str, Any]
    directions: tuple[str, ...]
    heartbeat_s: int = HEARTBEAT_S
    grace_s: int = GRACE_S

    def storage(self) -> optuna.storages.BaseStorage:
        return make_storage(self.url, self.heartbeat_s, self.grace_s)

    def check(self, partial: bool = False) -> None:
        """Fail, touching nothing, when the study exists with other settings (`partial`: only
        those of `identity`'s keys known yet)."""
        storage = self.storage()
        try:
            study = optuna.load_study(study_name=self.name, storage=storage)
        except KeyError:
            return  # not created yet
        self._compare(study, partial)

    def _compare(self, study: optuna.Study, partial: bool = False) -> None:
        recorded = study.user_attrs.get("identity")
        theirs = [d.name.lower() for d in study.directions]
        if list(self.directions) != theirs:
            raise ConfigError(f"study {self.name!r} in {self.url} optimises {theirs}, not "
                              f"{list(self.directions)}; choose another --study")
        if recorded is not None:
            keys = set(self.identity) if partial else set(recorded) | set(self.identity)
            order = ["space", "objectives", "scorer", "column"]  # the most telling first
            differing = [k for k in sorted(keys, key=lambda k: (k not in order,
                                                                order.index(k) if k in order
                                                                else 0, k))
                         if recorded.get(k) != self.identity.get(k)]
            if not differing:
                return
            key = differing[0]
            raise ConfigError(f"study {self.name!r} in {self.url} searches with another {key} "
                              f"({recorded.get(key)!r}, here {self.identity.get(key)!r}); choose "
                              f"another --study")

    def open(self, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
        study = optuna.create_study(study_name=self.name, storage=self.storage(),
                                    sampler=sampler, directions=list(self.directions),
                                    load_if_exists=True)
        self._compare(study)
        if study.user_attrs.get("identity") is None:
            study.set_user_attr("identity", self.identity)
        return study


UNJUDGED_GRACE_S = 30.0  # judging a proposal's costs takes milliseconds; latency, a second


def live_rank(study: optuna.Study, number: int,
              verdict: Callable[[FrozenTrial], bool | None] | None = None, poll_s: float = 0.05
              ) -> int:
    """1 + how many trials numbered below `number` have neither failed nor been pruned (module
    doc: one budget). Under constraints a pruned trial is a rejected proposal, which takes none
    of the budget (`nas.search.constraints`): `verdict` says whether a running trial meets them
    (None: its worker has not judged it yet), and the rank waits until every running trial
    below is judged (milliseconds: its costs), so that it counts exactly those to be scored.
    A storage without heartbeats never fails a dead worker's unjudged trial, so after
    `UNJUDGED_GRACE_S` such a trial counts as to be scored: at worst the budget ends a trial
    short, where waiting on would hang every worker."""
    deadline = time.monotonic() + UNJUDGED_GRACE_S
    while True:
        below = [t for t in study.get_trials(deepcopy=False) if t.number < number]
        running = [verdict(t) if verdict else True for t in below
                   if t.state == TrialState.RUNNING]
        if None in running and time.monotonic() > deadline:
            running = [True if judged is None else judged for judged in running]
        if None not in running:
            return 1 + sum(running) + sum(1 for t in below if t.state not in (
                TrialState.RUNNING, TrialState.FAIL, TrialState.PRUNED))
        fail_stale(study)  # a dead worker's unjudged trial fails, and stops the wait
        time.sleep(poll_s)


@contextmanager
def heartbeat(study: optuna.Study, trial_id: int) -> Iterator[None]:
    """Record the trial's heartbeat while it is scored, where the storage keeps them."""
    storage = study._storage  # Optuna wraps an RDB storage in a cache that forwards heartbeats
    if not _beats(storage):
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            storage.record_heartbeat(trial_id)
            stop.wait(storage.get_heartbeat_interval() or HEARTBEAT_S)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _beats(storage: optuna.storages.BaseStorage) -> bool:
    from optuna.storages._heartbeat import BaseHeartbeat  # no public check of this

    return isinstance(storage, BaseHeartbeat) and storage.get_heartbeat_interval() is not None


def fail_stale(study: optuna.Study) -> None:
    if _beats(study._storage):
        optuna.storages.fail_stale_trials(study)


def fail_and_retry(study: optuna.Study, worker: str | None) -> list[int]:
    """A dead worker's running trials (`None`: every running trial), failed and re-queued once
    (the journal file's stand-in for heartbeats, run by the --workers parent). Returns their
    numbers."""
    retry = _retry_once()
    numbers = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if worker is None or trial.user_attrs.get(WORKER_ATTR) == worker:
            study.tell(trial.number, state=TrialState.FAIL)
            failed = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
            retry(study, failed)
            numbers.append(trial.number)
    return numbers


def directions_of(objectives: Sequence[str]) -> tuple[str, ...]:
    from nas.search.objectives import OBJECTIVES

    return tuple(OBJECTIVES[o] for o in objectives)
