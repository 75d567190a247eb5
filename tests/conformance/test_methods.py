"""Every registered training method on every space: it trains, checkpoints, resumes bit-identically
mid-epoch, and its supernet hands each architecture's weights to a standalone model that computes
the same function. And through the CLI: a run records its method, and export and search load it.
"""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from nas.cli import main
from nas.data import DataConfig, load_data, make_splits
from nas.errors import ConfigError
from search_spaces import Skeleton, get_space
from supernets import METHODS, TrainConfig, recalibrate_batchnorm, train

TINY = {"nb201": Skeleton(1, 10, 8, width=4, cells=1),
        "darts": Skeleton(1, 10, 8, width=4, cells=3),
        "mobilenet": Skeleton(1, 10, 8, width=4, cells=2)}
# Options that keep the tiny runs tiny and make splits happen inside two epochs.
TINY_OPTIONS = {"gmnas": {"split_at": "0.0,0.5", "score_batches": 1},
                "fewshot": {"split_at": 0.5}}
OPTION_FLAGS = {name: [f"--method-opt={k}={v}" for k, v in options.items()]
                for name, options in TINY_OPTIONS.items()}
# Gradient methods mix candidates as the space allows: DARTS mixing runs every candidate, so
# it refuses mobilenet's shared weights; TangleNAS superposes entangled ones, which darts lacks.
REFUSED = {("darts", "mobilenet"), ("drnas", "mobilenet"), ("tangle", "darts")}
for _name in ("darts", "drnas", "tangle"):  # a search-validation batch from 40 images
    OPTION_FLAGS[_name] = ["--batch-size", "16"]


def test_every_method_is_in_this_suite():
    assert {"spos", "alphanet", "pada", "fewshot", "gmnas", "darts", "drnas",
            "tangle"} <= set(METHODS.names())


@pytest.fixture(scope="module")
def splits():
    return make_splits(load_data(None), DataConfig(batch_size=32, train_subset=320), 0)


def _fresh(method_name, space):
    cls = METHODS.get(method_name)
    method = cls(space, cls.config_class(**TINY_OPTIONS.get(method_name, {})), seed=0)
    torch.manual_seed(0)
    return method.build_supernet(), method


@pytest.mark.parametrize("space_name", sorted(TINY))
@pytest.mark.parametrize("method_name", sorted(METHODS.names()))
def test_method_trains_resumes_and_hands_weights_over(method_name, space_name, splits):
    space = get_space(space_name, TINY[space_name])
    if (method_name, space_name) in REFUSED:
        with pytest.raises(ConfigError, match="--method"):
            _fresh(method_name, space)
        return
    config = TrainConfig(epochs=2, checkpoint_every_steps=3)
    net, method = _fresh(method_name, space)
    saved = []
    # Bi-level methods draw their architecture batches from `validation`; others ignore it.
    train(net, method, splits.train, config, validation=splits.val_stream,
          save_checkpoint=lambda s: saved.append(copy.deepcopy(s)))
    assert all(torch.isfinite(p).all() for p in net.parameters())
    mid_epoch = [s for s in saved if s["step"] > 0 and s["epoch"] == 1]
    assert mid_epoch, [(s["epoch"], s["step"]) for s in saved]
    again, method = _fresh(method_name, space)
    train(again, method, splits.train, config, validation=splits.val_stream,
          resume_from=mid_epoch[0])
    for (key, a), b in zip(net.state_dict().items(), again.state_dict().values()):
        if torch.is_tensor(a):
            assert torch.equal(a, b), key

    images = next(iter(splits.val.epoch(0)))[0][:16]
    arch = space.sample(np.random.default_rng(3))
    recalibrate_batchnorm(net, lambda x: net(x, arch), splits.calibration.epoch(0), 2)
    model = space.build_model(arch)
    model.load_state_dict(net.subnet_state_dict(arch, model))
    net.eval(), model.eval()
    assert (model(images) - net(images, arch)).abs().max() < 1e-5


@pytest.mark.parametrize("method_name", sorted(METHODS.names()))
def test_cli_run_records_its_method_and_exports(method_name, tmp_path, capsys):
    run = tmp_path / "run"
    flags = ["--space", "nb201", "--width", "4", "--cells", "1", "--train-subset", "200",
             "--epochs", "2", "--device", "cpu"]
    assert main(["supernet", *flags, "--method", method_name, *OPTION_FLAGS.get(method_name, []),
                 "--out", str(run)]) == 0
    recorded = json.loads((run / "config.json").read_text())["settings"]["method"]
    assert recorded["name"] == method_name
    assert recorded["options"] == {**METHODS.get(method_name).config_class().to_dict(),
                                   **TINY_OPTIONS.get(method_name, {})}
    arch = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    assert main(["export", str(run), "--arch", arch, "--out", str(tmp_path / "m.pt2"),
                 "--device", "cpu"]) == 0
    assert main(["search", "--supernet", str(run), "--trials", "2", "--device", "cpu",
                 "--out", str(tmp_path / "search")]) == 0
    assert (tmp_path / "search" / "best.txt").read_text().strip()


@pytest.mark.parametrize("command", ["supernet", "search"])
def test_method_options_that_do_not_fit_the_space_fail_before_any_file(command, tmp_path, capsys):
    run = tmp_path / "run"
    code = main([command, "--space", "mobilenet", "--width", "4", "--cells", "2", "--method",
                 "fewshot", "--method-opt", "decision=stage1.block4.kernel", "--out", str(run)])
    assert code == 2 and "some architectures ignore it" in capsys.readouterr().err
    assert not run.exists()
