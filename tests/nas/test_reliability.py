"""Kill-and-resume with identical results, safe checkpoint loading, fuzzed command-line input."""
from __future__ import annotations

import copy
import dataclasses
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.cli import main
from nas.data import DataConfig, load_data, make_splits
from nas.errors import CheckpointError
from nas.runs import load_checkpoint
from search_spaces import Skeleton, get_space
from supernets import METHODS, TrainConfig, train

REPO = Path(__file__).resolve().parents[2]
TINY = ["--space", "nb201", "--width", "4", "--cells", "1"]


def _fresh(seed=0):
    space = get_space("nb201", Skeleton(1, 10, 8, width=4, cells=1))
    splits = make_splits(load_data(None), DataConfig(batch_size=64), seed)
    torch.manual_seed(seed)
    return space.build_supernet(), METHODS.get("spos")(space, seed=seed), splits


def test_resume_from_any_mid_epoch_checkpoint_is_bit_identical():
    config = TrainConfig(epochs=2, checkpoint_every_steps=5)
    net, method, splits = _fresh()
    saved = []
    train(net, method, splits.train, config, save_checkpoint=lambda s: saved.append(copy.deepcopy(s)))
    positions = [(s["epoch"], s["step"]) for s in saved]
    assert (0, 5) in positions and (1, 10) in positions and positions[-1] == (2, 0)
    for state in saved[:-1]:
        again, method, splits = _fresh()
        train(again, method, splits.train, config, resume_from=state)
        for (name, a), b in zip(net.state_dict().items(), again.state_dict().values()):
            assert torch.equal(a, b), (name, state["epoch"], state["step"])


def _nas(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    return subprocess.Popen([sys.executable, "-m", "nas.cli", *argv], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finished(process: subprocess.Popen) -> int:
    """Wait for a `_nas` process; its stderr becomes the failure message when it fails."""
    _, err = process.communicate()
    assert process.returncode == 0, err
    return process.returncode


def _wait_for(predicate, process, timeout_s=120.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"condition not reached; process ended with {process.returncode}: "
                                 f"{process.stderr.read() if process.stderr else ''}")
        time.sleep(0.02)


# Methods with state beyond SPOS's: PA&DA's tables and data distribution, GM-NAS's splits
# (made at the start of epochs 1 and 3, so a kill lands around them).
@pytest.mark.parametrize("method", [[], ["--method", "pada"],
                                    ["--method", "gmnas", "--method-opt", "split_at=0.2,0.5",
                                     "--method-opt", "score_batches=2"]],
                         ids=["spos", "pada", "gmnas"])
def test_sigkill_during_supernet_training_then_resume_equals_uninterrupted(method, tmp_path):
    argv = [*TINY, "--epochs", "6", "--checkpoint-every", "4", *method]
    straight = _nas("supernet", *argv, "--out", str(tmp_path / "straight"))
    killed_run = tmp_path / "killed"
    killed = _nas("supernet", *argv, "--out", str(killed_run))
    _wait_for(lambda: (killed_run / "supernet.pt").exists(), killed)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    partial = load_checkpoint(killed_run / "supernet.pt", "nas-supernet")
    assert (partial["epoch"], partial["step"]) < (6, 0)  # it really was cut short
    _finished(_nas("supernet", *argv, "--out", str(killed_run)))
    _finished(straight)
    a = load_checkpoint(tmp_path / "straight" / "supernet.pt", "nas-supernet")["model"]
    b = load_checkpoint(killed_run / "supernet.pt", "nas-supernet")["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k] for k in a)


def _trial_states(run: Path) -> list[tuple[int, str]]:
    if not (run / "study.db").exists():
        return []
    try:
        with sqlite3.connect(run / "study.db") as db:
            return db.execute("SELECT number, state FROM trials ORDER BY number").fetchall()
    except sqlite3.OperationalError:
        return []


def test_sigkill_during_search_loses_and_duplicates_no_trial(tmp_path):
    supernet = tmp_path / "supernet"
    assert main(["supernet", *TINY, "--epochs", "1", "--out", str(supernet)]) == 0
    run = tmp_path / "search"
    argv = ["search", "--supernet", str(supernet), "--searcher", "random", "--trials", "30",
            "--out", str(run)]
    killed = _nas(*argv)
    _wait_for(lambda: sum(s == "COMPLETE" for _, s in _trial_states(run)) >= 3, killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert len(_trial_states(run)) < 30
    _finished(_nas(*argv))
    states = _trial_states(run)
    assert [n for n, _ in states] == list(range(30))
    assert all(s == "COMPLETE" for _, s in states)
    import pandas as pd
    assert sorted(pd.read_csv(run / "trials.csv")["trial"]) == list(range(30))


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_that_runs_code_on_unpickling_is_refused(tmp_path, capsys):
    marker = tmp_path / "code-ran"
    payload = _RunsCode()
    payload.marker = marker
    run = tmp_path / "run"
    assert main(["supernet", *TINY, "--epochs", "1", "--out", str(run)]) == 0
    with open(run / "supernet.pt", "wb") as handle:
        pickle.dump({"format": "nas-supernet", "model": payload}, handle)
    torch.save({"format": "nas-supernet", "model": payload}, tmp_path / "crafted.pt")
    for path in (run / "supernet.pt", tmp_path / "crafted.pt"):
        with pytest.raises(CheckpointError, match="not a readable checkpoint"):
            load_checkpoint(path, "nas-supernet")
    assert main(["export", str(run), "--arch", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                 "--out", str(tmp_path / "m.pt2")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not marker.exists()


def test_exported_program_that_runs_code_on_loading_is_refused(tmp_path):
    """`torch.export.load` alone would fall back to full unpickling and run this payload."""
    import io
    import zipfile

    from nas.export import load_program, save_model

    space = get_space("nb201", Skeleton(1, 10, 8, width=4, cells=1))
    arch = space.parse("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|avg_pool_3x3~2|")
    good = save_model(space.build_model(arch), space, arch, tmp_path / "good.pt2", {}).program
    assert load_program(good)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    marker = tmp_path / "code-ran"
    payload = _RunsCode()
    payload.marker = marker
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(tmp_path / "evil.pt2", "w") as crafted:
        for info in source.infolist():
            is_pickle = info.filename.endswith("sample_inputs/model.pt")
            crafted.writestr(info, buffer.getvalue() if is_pickle else source.read(info.filename))
    with pytest.raises(CheckpointError, match="not a loadable exported model"):
        load_program(tmp_path / "evil.pt2")
    assert not marker.exists()
    assert "TORCH_FORCE_WEIGHTS_ONLY_LOAD" not in os.environ


def _outcome(argv) -> int:
    try:
        return main(argv)
    except SystemExit as leave:  # argparse's own refusal
        return leave.code


_not_a_number = st.text(max_size=12).filter(lambda s: not s.strip().lstrip("+-").isdigit())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(option=st.sampled_from(["--epochs", "--width", "--cells", "--seed", "--batch-size",
                               "--trials", "--lr", "--checkpoint-every", "--warmup-epochs",
                               "--lr-schedule"]),
       value=_not_a_number)
def test_fuzzed_numeric_options_give_one_line_errors(option, value, capsys):
    assert _outcome(["search", *TINY, option, value]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(space=st.one_of(st.sampled_from(["nb201", "darts", "mobilenet"]), st.text(max_size=12)),
       arch=st.text(max_size=80), data=st.one_of(st.none(), st.text(max_size=20)),
       method_opt=st.text(max_size=20))
def test_fuzzed_names_architectures_and_paths_give_one_line_errors(space, arch, data, method_opt,
                                                                   tmp_path_factory, capsys):
    argv = ["train", "--space", space, "--arch", arch, "--epochs", "0",
            "--out", str(tmp_path_factory.mktemp("fuzz") / "run")]
    if data is not None:
        argv += ["--data", data]
    code = _outcome(argv)
    err = capsys.readouterr().err.strip()
    assert code in (0, 2)
    if code == 2:
        assert len(err.splitlines()) == 1, err
    search_argv = ["search", *TINY, "--epochs", "0", "--trials", "0", "--method-opt", method_opt,
                   "--out", str(tmp_path_factory.mktemp("fuzz") / "run")]
    code = _outcome(search_argv)
    err = capsys.readouterr().err.strip()
    assert code in (0, 2) and (code == 0 or len(err.splitlines()) == 1), err


_METHOD_KEYS = sorted({f.name for name in METHODS.names()
                       for f in dataclasses.fields(METHODS.get(name).config_class)})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.one_of(st.sampled_from(sorted(METHODS.names())), st.text(max_size=8)),
       key=st.one_of(st.sampled_from(_METHOD_KEYS), st.text(max_size=8)),
       value=st.one_of(st.sampled_from(["0", "-1", "1.5", "nan", "inf", "true", "none", "",
                                        "0.5,0.25", "1<-0", "code", "kl", "batch-stats"]),
                       st.text(max_size=12)))
def test_fuzzed_methods_and_method_options_give_one_line_errors(method, key, value,
                                                                tmp_path_factory, capsys):
    argv = ["search", *TINY, "--epochs", "0", "--trials", "0", "--method", method,
            "--method-opt", f"{key}={value}", "--out", str(tmp_path_factory.mktemp("fuzz") / "run")]
    code = _outcome(argv)
    err = capsys.readouterr().err.strip()
    assert code in (0, 2) and (code == 0 or len(err.splitlines()) == 1), err


def test_a_run_recorded_before_a_config_field_existed_still_resumes(tmp_path, capsys):
    import json
    run = tmp_path / "run"
    argv = ["supernet", *TINY, "--epochs", "1", "--out", str(run)]
    assert main(argv) == 0
    config = json.loads((run / "config.json").read_text())
    del config["settings"]["train"]["lr_schedule"]  # as an older platform wrote it
    del config["settings"]["method"]["options"]["paths"]
    (run / "config.json").write_text(json.dumps(config))
    assert main(argv) == 0  # the defaults are what that run ran with: a resume
    assert main([*argv, "--lr-schedule", "linear"]) == 2  # not what it ran with
    assert "lr_schedule" in capsys.readouterr().err


def test_a_directory_holding_only_another_writers_temporary_file_is_still_free(tmp_path):
    from nas.errors import ConfigError
    from nas.runs import RunDir

    run = tmp_path / "run"
    run.mkdir()
    (run / ".config.json.k3j2.tmp").write_text("{")  # another worker is writing config.json
    assert RunDir(run).open({"kind": "groundtruth"}) is False
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")  # a user's file: never taken over
    with pytest.raises(ConfigError, match="not an empty run directory"):
        RunDir(other).open({"kind": "groundtruth"})
