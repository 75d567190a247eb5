"""Search workers sharing one study: PostgreSQL across processes, the journal file under
--workers; one budget, a dead worker's trial retried exactly once, refusals that touch nothing."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from nas.cli import main
from nas.search.shared_study import SharedStudy, fail_and_retry, make_storage
from nas.errors import ConfigError
from tests.nas.postgres_server import find_binaries, postgres_server

REPO = Path(__file__).resolve().parents[2]
TINY = ["--space", "nb201", "--width", "4", "--cells", "1", "--device", "cpu"]

needs_postgres = pytest.mark.skipif(
    find_binaries() is None and not os.environ.get("CI"),
    reason="no PostgreSQL binaries here (.ci/run installs them; under CI this test runs)")


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server() as url:
        yield url


def _worker(url: str, study: str, trials: int, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "tests.nas.shared_search_worker", url, study,
                             str(trials), str(out), *extra], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finished(process: subprocess.Popen) -> None:
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err


def _study(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=make_storage(url))


@needs_postgres
def test_three_workers_on_postgresql_complete_exactly_n_trials_together(postgres_url, tmp_path):
    SharedStudy(postgres_url, "together", {"space": "nb201 tiny"}, ("maximize",)).open(
        optuna.samplers.RandomSampler(0))  # created first: concurrent creation races
    workers = [_worker(postgres_url, "together", 40, tmp_path / f"w{k}") for k in range(3)]
    for process in workers:
        _finished(process)
    trials = _study(postgres_url, "together").get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 40  # none lost, none beyond the budget
    assert all(t.user_attrs.get("over_budget") for t in trials if t.state == TrialState.FAIL)
    assert len({t.number for t in complete}) == 40
    assert len({t.user_attrs["worker"] for t in complete}) >= 2  # the work was shared


@needs_postgres
def test_a_worker_killed_mid_trial_has_that_trial_retried_exactly_once(postgres_url, tmp_path):
    SharedStudy(postgres_url, "killed", {"space": "nb201 tiny"}, ("maximize",)).open(
        optuna.samplers.RandomSampler(0))
    marker = tmp_path / "hanging"
    victim = _worker(postgres_url, "killed", 12, tmp_path / "w9", "--hang", str(marker))
    deadline = time.time() + 120
    while not marker.exists():
        assert time.time() < deadline and victim.poll() is None, victim.stderr.read()
        time.sleep(0.2)
    hung_arch = marker.read_text()
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    workers = [_worker(postgres_url, "killed", 12, tmp_path / f"w{k}") for k in range(2)]
    for process in workers:
        _finished(process)
    trials = _study(postgres_url, "killed").get_trials(deepcopy=False)
    killed = [t for t in trials if t.user_attrs.get("arch") == hung_arch
              and t.state == TrialState.FAIL and not t.user_attrs.get("over_budget")]
    assert len(killed) == 1
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed[0].number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == killed[0].params
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 12


@needs_postgres
def test_independent_processes_on_one_study_draw_different_architectures(postgres_url,
                                                                          tmp_path):
    base = ["search", *TINY, "--scorer", "proxy:params", "--searcher", "random",
            "--storage", postgres_url, "--study", "apart", "--trials"]
    assert main([*base, "0", "--out", str(tmp_path / "create")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = [subprocess.Popen(["nas", *base, "24", "--out", str(tmp_path / f"p{k}")],
                                  cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for k in range(2)]
    for process in processes:
        _finished(process)
    complete = [t for t in _study(postgres_url, "apart").trials
                if t.state == TrialState.COMPLETE]
    assert len(complete) == 24
    archs = Counter(t.user_attrs["arch"] for t in complete)
    # Same --seed, but each process samples with a seed of its own: a handful of repeats at
    # most among 15,625 cells, not every architecture twice.
    assert len(archs) >= 20


@needs_postgres
def test_a_study_of_other_settings_or_an_unreachable_storage_is_refused_untouched(
        postgres_url, tmp_path, capsys):
    base = [*TINY, "--scorer", "proxy:params", "--searcher", "random", "--storage", postgres_url,
            "--study", "refuse"]
    assert main(["search", *base, "--trials", "0", "--out", str(tmp_path / "create")]) == 0
    before = len(_study(postgres_url, "refuse").trials)
    capsys.readouterr()
    assert main(["search", *base, "--objectives", "accuracy,params", "--trials", "5",
                 "--out", str(tmp_path / "other")]) == 2
    assert "optimises ['maximize']" in capsys.readouterr().err
    assert main(["search", *base[:-4], "--scorer", "proxy:synflow", *base[-4:], "--trials", "5",
                 "--out", str(tmp_path / "other2")]) == 2
    assert "searches with another scorer" in capsys.readouterr().err
    assert len(_study(postgres_url, "refuse").trials) == before
    assert not (tmp_path / "other").exists() and not (tmp_path / "other2").exists()
    bad = postgres_url.replace("port=", "port=1")
    assert main(["search", *TINY, "--scorer", "proxy:params", "--storage", bad,
                 "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nas search: error: cannot use --storage") and "\n" not in err
    assert not (tmp_path / "bad").exists()


def test_local_workers_share_one_budget_on_a_journal_file(tmp_path):
    out = tmp_path / "local"
    assert main(["search", *TINY, "--scorer", "proxy:params", "--searcher", "evolution",
                 "--trials", "30", "--workers", "2", "--out", str(out)]) == 0
    study = optuna.load_study(study_name="search", storage=make_storage(f"journal:{out}/study.journal"))
    states = Counter(t.state for t in study.trials)
    assert states[TrialState.COMPLETE] == 30
    assert len(pd.read_csv(out / "trials.csv")) == 30
    assert (out / "best.txt").is_file()


def test_a_dead_local_workers_running_trial_is_failed_and_queued_once(tmp_path):
    storage = make_storage(f"journal:{tmp_path / 'j.journal'}")
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask({"x": optuna.distributions.CategoricalDistribution(["a", "b"])})
    trial.set_user_attr("worker", "host:123")
    assert fail_and_retry(study, "host:999") == []  # another worker's: untouched
    assert fail_and_retry(study, "host:123") == [trial.number]
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.WAITING]
    assert study.get_trials()[1].params == study.get_trials()[0].params
    assert fail_and_retry(study, "host:123") == []  # nothing running: no second retry


def test_bad_worker_and_storage_options_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["search", *TINY, "--scorer", "proxy:params", "--workers", "0",
              "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2 and "expected a number >= 1" in capsys.readouterr().err
    assert main(["search", *TINY, "--scorer", "proxy:params", "--storage", "nowhere",
                 "--out", str(tmp_path / "y")]) == 2
    assert "--storage takes postgresql://" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="no directory"):
        make_storage(f"journal:{tmp_path}/missing/j.journal")
    for storage in (f"journal:{tmp_path}/j.journal", f"sqlite:///{tmp_path}/s.db"):
        assert main(["search", *TINY, "--scorer", "proxy:params", "--storage", storage,
                     "--out", str(tmp_path / "z")]) == 2
        assert "cannot tell a dead process" in capsys.readouterr().err
    assert not (tmp_path / "z").exists()
