"""The training-method contract seen from the command line: every command scores with the
method's BatchNorm mode, a two-optimiser method survives SIGKILL, imports point one way, and
registries and defaults are defined once."""
from __future__ import annotations

import ast
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from nas.scorers.combined import DEFAULT_WITH_SUPERNET
from nas.cli import _configs, build_parser, main
from nas.config import DEFAULT_METHOD, SUPERNET_TRAINING, DataConfig, SearchConfig, TrainConfig
from nas.runs import load_checkpoint
from nas.training.supernet import load_supernet
from nas.searchers import SEARCHERS
from search_spaces import SPACES
from supernets import METHODS

REPO = Path(__file__).resolve().parents[2]
TINY = ["--space", "nb201", "--width", "4", "--cells", "1", "--train-subset", "400",
        "--device", "cpu"]


# ---- one BatchNorm mode for search, reuse, correlate and export ----------------------------
@pytest.mark.parametrize("bn_mode", ["recalibrate", "batch-stats"])
def test_search_reuse_correlate_and_export_score_with_the_methods_bn_mode(bn_mode, tmp_path):
    one_go = tmp_path / "one-go"
    assert main(["search", *TINY, "--epochs", "2", "--trials", "6", "--searcher", "random",
                 "--method-opt", f"bn_mode={bn_mode}", "--scorer", DEFAULT_WITH_SUPERNET,
                 "--out", str(one_go)]) == 0
    # nas correlate's default on a supernet run: the supernet part is the supernet's accuracy.
    trials = pd.read_csv(one_go / "trials.csv").set_index("arch")
    searched = trials["supernet"]

    reused = tmp_path / "reused"
    assert main(["search", "--supernet", str(one_go), "--trials", "6", "--searcher", "random",
                 "--device", "cpu", "--scorer", "supernet", "--out", str(reused)]) == 0
    again = pd.read_csv(reused / "trials.csv").set_index("arch")["val_accuracy"]
    assert again.to_dict() == searched.to_dict()

    truth = tmp_path / "truth.csv"
    pd.DataFrame({"arch": searched.index, "accuracy": range(len(searched))}).to_csv(truth,
                                                                                    index=False)
    assert main(["correlate", str(one_go), "--ground-truth", str(truth), "--device", "cpu"]) == 0
    correlated = pd.read_csv(one_go / "correlation-truth-accuracy" / "correlation.csv")
    correlated = correlated.set_index("arch")
    assert correlated["supernet"].to_dict() == searched.to_dict()
    # the same reference sample, kept in the run: the same combined scores as the search's
    assert correlated["combined_score"].to_dict() == trials["combined_score"].to_dict()

    # The mode really decides the scores: the other mode scores these paths differently.
    trained = load_supernet(one_go, "cpu")
    other = "batch-stats" if bn_mode == "recalibrate" else "recalibrate"
    other_method = type(trained.method)(trained.problem.space,
                                        type(trained.method.config)(bn_mode=other))
    data = trained.problem.scoring_data()
    other_scores = {a: other_method.score(trained.supernet, trained.problem.space.parse(a), data)
                    for a in searched.index}
    assert other_scores != searched.to_dict()

    out = tmp_path / "best.pt2"
    assert main(["export", str(one_go), "--out", str(out), "--device", "cpu"]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["bn_mode"] == bn_mode
    assert meta["supernet_score"] == pytest.approx(searched[meta["arch"]])
    # What is saved is scored: the exported weights' own validation accuracy.
    from nas.export import load_model
    from supernets import accuracy
    model, _ = load_model(out.with_suffix(".state_dict.pt"))
    assert meta["val_accuracy"] == pytest.approx(
        accuracy(model, model, trained.problem.splits.val.epoch(0)))
    if bn_mode == "recalibrate":
        assert meta["val_accuracy"] == pytest.approx(meta["supernet_score"])


# ---- a two-optimiser method killed and resumed ---------------------------------------------
def _arch_method_cli(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    return subprocess.Popen([sys.executable, "-m", "tests.supernets.arch_method", *argv],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def _finished(process: subprocess.Popen) -> None:
    _, err = process.communicate()
    assert process.returncode == 0, err


def test_sigkill_of_a_two_optimiser_method_then_resume_equals_uninterrupted(tmp_path):
    argv = ["supernet", "--space", "nb201", "--width", "4", "--cells", "1", "--epochs", "4",
            "--checkpoint-every", "4", "--method", "test-arch-logits", "--device", "cpu"]
    straight = _arch_method_cli(*argv, "--out", str(tmp_path / "straight"))
    killed_run = tmp_path / "killed"
    killed = _arch_method_cli(*argv, "--out", str(killed_run))
    path = killed_run / "supernet.pt"
    while not path.exists():
        assert killed.poll() is None, killed.stderr.read()
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    partial = load_checkpoint(path, "nas-supernet")
    assert (partial["epoch"], partial["step"]) < (4, 0)
    _finished(_arch_method_cli(*argv, "--out", str(killed_run)))
    _finished(straight)
    a = load_checkpoint(tmp_path / "straight" / "supernet.pt", "nas-supernet")
    b = load_checkpoint(path, "nas-supernet")
    assert set(a["optimizers"]) == {"weights", "architecture"}
    assert torch.equal(a["method"]["logits"], b["method"]["logits"])
    assert not torch.equal(a["method"]["logits"], torch.zeros_like(a["method"]["logits"]))
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    adam_a, adam_b = a["optimizers"]["architecture"]["state"], b["optimizers"]["architecture"]["state"]
    assert all(torch.equal(adam_a[0][k], adam_b[0][k]) for k in ("exp_avg", "exp_avg_sq"))


# ---- imports point one way -----------------------------------------------------------------
KERNEL = {"nas.errors", "nas.registry"}
LAYERS = {"search_spaces": 0, "supernets": 1, "nas": 2}


def _project_imports(path: Path) -> set[str]:
    """Project modules `path` imports (absolute imports of search_spaces, supernets, nas)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
        found |= {n for n in names if n.split(".")[0] in LAYERS}
    return found


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _all_modules() -> dict[str, set[str]]:
    return {_module_name(p): _project_imports(p)
            for package in LAYERS for p in (REPO / package).rglob("*.py")}


def test_imports_point_from_higher_layers_to_lower_ones_only():
    upward = []
    for module, imports in _all_modules().items():
        if module in KERNEL:
            assert imports <= {"nas.errors"}, (module, imports)  # the kernel imports no layer
            continue
        for imported in imports - KERNEL:
            if LAYERS[imported.split(".")[0]] > LAYERS[module.split(".")[0]]:
                upward.append(f"{module} imports {imported}")
    assert upward == []


def test_the_import_check_sees_an_upward_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from nas.config import TrainConfig\nimport supernets.loop\nimport numpy\n")
    assert _project_imports(sample) == {"nas.config", "supernets.loop"}


def test_results_do_not_import_the_training_methods():
    modules = _all_modules()
    seen, frontier = set(), ["nas.runs", "nas.runs.run_dir"]
    while frontier:
        module = frontier.pop()
        if module in seen:
            continue
        seen.add(module)
        frontier += [m for m in modules.get(module, ())
                     if m in modules and m not in seen]
    assert not any(m.startswith("supernets") for m in seen), sorted(seen)


# ---- registries name their entries once; the CLI reads them and the configs' defaults -------
def test_entries_are_registered_under_the_names_they_give_themselves():
    from nas.registry import Registry

    registry = Registry("thing")

    class Named:
        name = "named"

    def plain():
        return None

    class Nameless:
        pass

    registry.register(Named)
    registry.register(plain)
    assert registry.names() == ["named", "plain"]
    with pytest.raises(ValueError, match="names itself nowhere"):
        registry.register(Nameless)  # a class must say its name; its __name__ is not it
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(Named)
    assert all(METHODS.get(n).name == n for n in METHODS.names())


def test_an_untrained_supernet_run_can_be_rerun_and_searched(tmp_path, capsys):
    run = tmp_path / "run"
    for _ in range(2):  # the second time resumes from the untrained run's checkpoint
        assert main(["supernet", *TINY, "--epochs", "0", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["search", "--supernet", str(run), "--trials", "2", "--device", "cpu",
                 "--out", str(tmp_path / "search")]) == 0
    # The suggested stand-alone training builds the supernet run's skeleton on its data, though
    # this search was given none of those options.
    suggestion = capsys.readouterr().out.split("nas train ")[1].splitlines()[0]
    train_args = build_parser().parse_args(["train", *shlex.split(suggestion)])
    assert (train_args.space, train_args.width, train_args.cells, train_args.train_subset) == \
        ("nb201", 4, 1, 400)


def test_help_lists_every_registered_space_method_and_searcher():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    text = commands["search"].format_help().replace("\n", " ")
    for name in [*SPACES.names(), *METHODS.names(), *SEARCHERS.names()]:
        assert name in text, name


def test_command_line_defaults_are_the_configs_defaults():
    parser = build_parser()
    search = parser.parse_args(["search"])
    assert _configs(search)[2] == SUPERNET_TRAINING != TrainConfig()
    assert search.method == DEFAULT_METHOD and search.trials == SearchConfig().trials
    assert search.searcher == SearchConfig().searcher
    assert search.batch_size == DataConfig().batch_size and search.lr == TrainConfig().lr
    assert search.device == TrainConfig().device
    train = parser.parse_args(["train", "--space", "nb201", "--arch", "x"])
    assert _configs(train)[2] == TrainConfig()
    from nas import api
    import inspect
    assert inspect.signature(api.search).parameters["train_config"].default == SUPERNET_TRAINING
    assert inspect.signature(api.supernet).parameters["method"].default == DEFAULT_METHOD


@pytest.mark.parametrize("flags, epochs, steps, seconds", [
    ([], SUPERNET_TRAINING.epochs, SUPERNET_TRAINING.steps, None),
    (["--epochs", "50"], 50, None, None),  # a stated budget replaces the default steps
    (["--time-budget", "2m"], SUPERNET_TRAINING.epochs, None, 120.0),
    (["--time-budget", "2m", "--epochs", "7"], 7, None, 120.0),
    (["--steps", "10"], SUPERNET_TRAINING.epochs, 10, None)])
def test_a_stated_budget_replaces_the_default_budget_whole(flags, epochs, steps, seconds):
    train = _configs(build_parser().parse_args(["supernet", "--space", "nb201", *flags]))[2]
    assert (train.epochs, train.steps, train.time_budget_s) == (epochs, steps, seconds)
