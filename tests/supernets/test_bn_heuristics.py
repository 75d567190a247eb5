"""Supernet-training heuristics as options: `bn_mode=running`, `bn_affine`, `decay_unused`, and
the `--weight-decay` / `--grad-clip` training options. Each changes what it names and nothing else."""
from __future__ import annotations

import copy
import io
import math

import numpy as np
import pytest
import torch
from torch import nn

from nas.cli import main
from nas.cli.main import build_parser
from nas.cli.options import train_config
from nas.config import DataConfig, SpaceConfig, parse_options
from nas.errors import ConfigError
from nas.problem import build_problem
from search_spaces import Skeleton, get_space
from supernets import METHODS, ScoringData, TrainConfig, train
from supernets.evaluation import batchnorms
from supernets.methods.base import MethodConfig

TINY = {"nb201": Skeleton(1, 10, 8, width=4, cells=1),
        "darts": Skeleton(1, 10, 8, width=4, cells=3)}
CLI = ["--space", "nb201", "--width", "4", "--cells", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def problem():
    return build_problem(SpaceConfig("nb201", width=4, cells=1),
                         DataConfig(batch_size=16, train_subset=120), seed=0, device="cpu")


def _data(problem) -> ScoringData:
    """The sources themselves (no prepared regrouping), so references read the same batches."""
    return ScoringData(problem.splits.val, problem.splits.calibration)


def _trained(space, splits, steps: int = 6, **options):
    method = METHODS.get("spos")(space, METHODS.get("spos").config_class(**options), seed=0)
    torch.manual_seed(0)
    supernet = method.build_supernet()
    train(supernet, method, splits.train, TrainConfig(steps=steps, checkpoint_every_steps=0,
                                                      device="cpu"), description="test")
    return method, supernet


def _statistics(module) -> list[torch.Tensor]:
    return [t.clone() for bn in batchnorms(module)
            for t in (bn.running_mean, bn.running_var, bn.num_batches_tracked)]


@torch.no_grad()
def _reference_accuracy(net, forward, batches) -> float:
    correct = total = 0
    for images, labels, *_ in batches:
        correct += int((forward(images).argmax(1) == labels).sum())
        total += len(labels)
    return 100.0 * correct / total


def _conv_arch(space):
    """An NB201 path with convolutions on every edge (so every op kind with a BatchNorm runs)."""
    return space.parse("|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|"
                       "+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")


# ---- bn_mode -------------------------------------------------------------------------------

def test_running_scores_in_eval_mode_on_the_supernets_own_statistics(problem):
    method, supernet = _trained(problem.space, problem.splits, bn_mode="running")
    arch = _conv_arch(problem.space)
    before = _statistics(supernet)
    reference = copy.deepcopy(supernet).eval()
    want = _reference_accuracy(reference, lambda x: reference(x, arch),
                               problem.splits.val.epoch(0))
    assert method.score(supernet, arch, _data(problem)) == want
    assert method.score(supernet, arch, problem.scoring_data()) == want  # prepared batches too
    # no recalibration: the statistics training left are still there, and calibrate (what
    # export calls) leaves them as they are
    method.calibrate(supernet, arch, _data(problem))
    assert all(torch.equal(a, b) for a, b in zip(before, _statistics(supernet)))
    model = problem.space.build_model(arch)
    model.load_state_dict(supernet.subnet_state_dict(arch, model))
    x = next(iter(problem.splits.val.epoch(0)))[0]
    supernet.eval()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), supernet(x, arch), rtol=0, atol=1e-5)


def test_recalibrate_and_batch_stats_are_unchanged(problem):
    method, supernet = _trained(problem.space, problem.splits)
    arch = _conv_arch(problem.space)
    data = _data(problem)
    # recalibrate: reset, cumulative average over the first calibration batches, then eval
    reference = copy.deepcopy(supernet)
    for bn in batchnorms(reference):
        bn.reset_running_stats()
        bn.momentum = None
    reference.train()
    with torch.no_grad():
        for _, (images, *_rest) in zip(range(method.config.calibration_batches),
                                       problem.splits.calibration.epoch(0)):
            reference(images, arch)
    reference.eval()
    want = _reference_accuracy(reference, lambda x: reference(x, arch), problem.splits.val.epoch(0))
    assert method.score(supernet, arch, data) == want

    batch_stats = METHODS.get("spos")(problem.space, parse_options(
        METHODS.get("spos").config_class, ["bn_mode=batch-stats"]))
    reference = copy.deepcopy(supernet)
    for bn in batchnorms(reference):
        bn.momentum = 0.0
    reference.train()
    want = _reference_accuracy(reference, lambda x: reference(x, arch), problem.splits.val.epoch(0))
    before = _statistics(supernet)
    assert batch_stats.score(supernet, arch, data) == want
    # running means and variances untouched (momentum 0; the batch counter does count)
    assert all(torch.equal(a, b) for i, (a, b) in enumerate(zip(before, _statistics(supernet)))
               if i % 3 != 2)


def test_unknown_option_values_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="bn_mode 'stale'.*recalibrate, batch-stats, running"):
        MethodConfig(bn_mode="stale")
    assert parse_options(MethodConfig, ["bn_mode=running"]).bn_mode == "running"
    with pytest.raises(ConfigError, match="bn_affine='maybe'.*true or false"):
        parse_options(MethodConfig, ["bn_affine=maybe"])
    with pytest.raises(ConfigError, match="decay_unused"):
        MethodConfig(decay_unused="yes")  # type: ignore[arg-type]
    options = parse_options(MethodConfig, ["bn_affine=false", "decay_unused=true"])
    assert (options.bn_affine, options.decay_unused) == (False, True)
    assert (MethodConfig().bn_affine, MethodConfig().decay_unused) == (True, False)


def test_the_cli_refuses_a_bad_bn_affine_with_one_line(tmp_path, capsys):
    assert main(["supernet", *CLI, "--method-opt", "bn_affine=maybe",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "maybe" in err and "true or false" in err
    assert not (tmp_path / "run").exists()


# ---- bn_affine -----------------------------------------------------------------------------

def _cell_op_batchnorms(supernet) -> list[nn.Module]:
    return [m for op in supernet.candidate_ops() for m in op.modules()
            if isinstance(m, nn.BatchNorm2d)]


@pytest.mark.parametrize("space_name", ["nb201", "darts"])
def test_non_affine_cells_export_the_supernet_paths_function(space_name):
    problem_splits = build_problem(SpaceConfig(space_name, width=4, cells=TINY[space_name].cells),
                                   DataConfig(batch_size=16, train_subset=120), seed=0,
                                   device="cpu")
    space = problem_splits.space
    method, supernet = _trained(space, problem_splits.splits, bn_affine=False)
    cell_bns = _cell_op_batchnorms(supernet)
    assert cell_bns and not any(bn.affine for bn in cell_bns)
    assert all(bn.track_running_stats for bn in cell_bns)  # recalibration still works
    ids = {id(bn) for bn in cell_bns}
    others = [bn for bn in batchnorms(supernet) if id(bn) not in ids]
    assert others and all(bn.affine for bn in others)  # stem, fixed blocks, head, preprocessing
    names = {id(m): n for n, m in supernet.named_modules()}
    keys = set(supernet.state_dict())
    assert not any(f"{names[id(bn)]}.{leaf}" in keys for bn in cell_bns for leaf in ("weight", "bias"))
    assert not any(p is bn.weight for bn in cell_bns for p in supernet.parameters())

    arch = (_conv_arch(space) if space_name == "nb201"
            else next(a for a in (space.sample(np.random.default_rng(seed)) for seed in range(50))
                      if "sep_conv" in str(a) and "dil_conv" in str(a)))
    data = _data(problem_splits)
    method.calibrate(supernet, arch, data)
    model = space.build_model(arch)
    state = supernet.subnet_state_dict(arch, model)
    model.load_state_dict(state)
    assert all(bn.affine for bn in batchnorms(model))
    filled = [k for k in state if k not in keys]  # the affine twins of non-affine BatchNorms
    assert filled
    for key in filled:
        fill = torch.ones_like if key.endswith(".weight") else torch.zeros_like
        assert torch.equal(state[key], fill(state[key])), key
    x = next(iter(problem_splits.splits.val.epoch(0)))[0]
    supernet.eval()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), supernet(x, arch), rtol=0, atol=1e-5)
    assert method.score(supernet, arch, data) == _reference_accuracy(
        model, model, problem_splits.splits.val.epoch(0))


def test_affine_cells_are_the_default():
    space = get_space("nb201", TINY["nb201"])
    supernet = METHODS.get("spos")(space).build_supernet()
    assert all(bn.affine for bn in batchnorms(supernet))


def test_entangled_and_split_supernets_get_non_affine_cells_too(problem):
    space = get_space("nb201", TINY["nb201"])
    options = ["bn_affine=false"]
    tangle = METHODS.get("tangle")(space, parse_options(METHODS.get("tangle").config_class, options))
    entangled = tangle.build_supernet()
    bns = _cell_op_batchnorms(entangled)
    assert bns and not any(bn.affine for bn in bns)
    arch = _conv_arch(space)
    model = space.build_model(arch)
    model.load_state_dict(entangled.subnet_state_dict(arch, model))
    x = torch.randn(4, 1, 8, 8)
    entangled.eval()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), entangled(x, arch), rtol=0, atol=1e-5)
    for name in ("fewshot", "gmnas"):
        method = METHODS.get(name)(space, parse_options(METHODS.get(name).config_class, options))
        split = method.build_supernet()
        assert len(split.parts) > 1
        bns = _cell_op_batchnorms(split)
        assert len(bns) == len(split.parts) * len(_cell_op_batchnorms(split.parts[0]))
        assert not any(bn.affine for bn in bns)


def test_mobilenet_refuses_non_affine_cells():
    space = get_space("mobilenet", Skeleton(1, 10, 8, width=4, cells=1))
    with pytest.raises(ConfigError, match="bn_affine=false"):
        METHODS.get("spos")(space, parse_options(METHODS.get("spos").config_class,
                                                 ["bn_affine=false"]))


def _roundtrip(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("space_name, options", [
    ("nb201", {"bn_affine": False, "decay_unused": True}),
    ("darts", {"bn_affine": False, "decay_unused": True}),
    ("nb201", {"sampling": "fair", "paths": 2}),  # a cycle of 5 split over steps
    ("nb201", {"sampling": "deiso", "bn_mode": "running"}),
    ("nb201", {"none_weight": 0.5}),
])
def test_a_heuristic_variants_run_resumes_bit_identically(space_name, options, problem):
    space = get_space(space_name, TINY[space_name])
    config = TrainConfig(epochs=2, checkpoint_every_steps=2, device="cpu")

    def set_up():
        method = METHODS.get("spos")(space, METHODS.get("spos").config_class(**options), seed=0)
        torch.manual_seed(0)
        return method, method.build_supernet()

    method, net = set_up()
    saved = []
    train(net, method, problem.splits.train, config,
          save_checkpoint=lambda state: saved.append(copy.deepcopy(state)))
    resumable = [s for s in saved if 0 < s["steps_done"] < saved[-1]["steps_done"]]
    assert resumable
    for state in resumable:
        resumed, again = set_up()
        train(again, resumed, problem.splits.train, config, resume_from=_roundtrip(state))
        for (name, a), b in zip(net.state_dict().items(), again.state_dict().values()):
            assert torch.equal(a, b), (name, state["steps_done"])


# ---- decay_unused --------------------------------------------------------------------------

@pytest.mark.parametrize("decay_unused", [False, True])
def test_decay_unused_moves_an_unsampled_op_by_exactly_the_sgd_weight_decay(decay_unused, problem):
    space = get_space("nb201", TINY["nb201"])
    spos = METHODS.get("spos")
    method = spos(space, spos.config_class(decay_unused=decay_unused), seed=0)
    arch = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
                       "+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    method.sampler.ask = lambda n=1: [arch] * n  # the step trains this path only
    torch.manual_seed(0)
    net = method.build_supernet()
    unused = net.cells[0].edges[0]["nor_conv_1x1"].conv.weight
    used = net.cells[0].edges[0]["nor_conv_3x3"].conv.weight
    w0, used0 = unused.detach().clone(), used.detach().clone()
    config = TrainConfig(steps=1, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1,
                         checkpoint_every_steps=0, device="cpu")
    train(net, method, problem.splits.train, config, description="test")
    assert not torch.equal(used.detach(), used0)
    if not decay_unused:
        assert torch.equal(unused.detach(), w0)
        assert unused.grad is None
        return
    # SGD's first step on a zero gradient (torch.optim.SGD, Nesterov): d = 0 + wd * w,
    # buffer = d, d = d + momentum * buffer, w = w - lr * d (the schedule's factor is 1 at step 0)
    d = torch.zeros_like(w0).add(w0, alpha=config.weight_decay)
    d = d.add(d.clone(), alpha=config.momentum)
    expected = w0.clone().add_(d, alpha=-config.lr)
    torch.testing.assert_close(unused.detach(), expected, rtol=1e-6, atol=0)
    assert unused.detach().abs().sum() < w0.abs().sum()
    assert torch.equal(unused.grad, torch.zeros_like(w0))


def test_methods_without_the_single_path_rule_refuse_decay_unused():
    space = get_space("nb201", TINY["nb201"])
    for name in ("alphanet", "darts"):
        cls = METHODS.get(name)
        with pytest.raises(ConfigError, match="decay_unused"):
            cls(space, parse_options(cls.config_class, ["decay_unused=true"]))


# ---- --weight-decay and --grad-clip --------------------------------------------------------

def test_weight_decay_and_grad_clip_options_fill_the_train_config():
    parser = build_parser()
    args = parser.parse_args(["supernet", *CLI, "--weight-decay", "0.001", "--grad-clip", "0"])
    config = train_config(args)
    assert (config.weight_decay, config.grad_clip_norm) == (0.001, 0.0)
    default = train_config(parser.parse_args(["supernet", *CLI]))
    assert (default.weight_decay, default.grad_clip_norm) == (
        TrainConfig.weight_decay, TrainConfig.grad_clip_norm)
    arch = ["--arch", "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|"]
    for command, extra in (("train", arch), ("groundtruth", [])):
        config = train_config(parser.parse_args([command, *CLI, *extra, "--weight-decay", "0"]))
        assert config.weight_decay == 0.0


@pytest.mark.parametrize("flag,value", [("--weight-decay", "-0.1"), ("--grad-clip", "-1"),
                                        ("--grad-clip", "nan"), ("--weight-decay", "lots")])
def test_bad_weight_decay_or_grad_clip_exits_2_on_one_line(flag, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as leave:
        main(["supernet", *CLI, flag, value, "--out", str(tmp_path / "run")])
    assert leave.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err and value in err


def test_train_config_validates_weight_decay_and_grad_clip():
    for field, value in (("weight_decay", -1e-4), ("grad_clip_norm", -1.0),
                         ("weight_decay", math.nan)):
        with pytest.raises(ConfigError, match=field):
            TrainConfig(**{field: value})
    assert TrainConfig(weight_decay=0.0, grad_clip_norm=0.0).grad_clip_norm == 0.0
