"""Mixed precision and channels-last, exercised on the CPU (the GPU path's code is the same)."""
from __future__ import annotations

import copy

import pytest
import torch

from nas.data import DataConfig, load_data, make_splits
from nas.errors import ConfigError, TrainingError
from search_spaces import Skeleton, get_space
from supernets import METHODS, StepContext, TrainConfig, train
from supernets.precision import Precision, resolve_precision


def _setup(seed: int = 0):
    space = get_space("nb201", Skeleton(1, 10, 8, width=4, cells=1))
    splits = make_splits(load_data(None), DataConfig(batch_size=32), seed)
    method = METHODS.get("spos")(space, seed=seed)
    torch.manual_seed(seed)
    return method.build_supernet(), method, splits


def test_auto_precision_is_fp32_on_a_cpu_and_unknown_names_are_refused():
    assert resolve_precision("auto", "cpu") == "fp32"
    with pytest.raises(ConfigError, match="choose auto, fp32, bf16, fp16"):
        TrainConfig(precision="fp8")


def test_bf16_autocast_runs_the_forward_in_bf16_and_keeps_fp32_weights():
    net, method, splits = _setup()
    seen = []
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    saved = []
    train(net, method, splits.train, TrainConfig(steps=20, precision="bf16"),
          save_checkpoint=saved.append)
    assert seen and set(seen) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert saved[-1]["precision"] == {"name": "bf16"}
    # One bf16 step moves the weights as an fp32 step does, to bf16's precision.
    steps = {}
    for name in ("bf16", "fp32"):
        net, method, splits = _setup()
        initial = torch.cat([p.detach().flatten().clone() for p in net.parameters()])
        train(net, method, splits.train, TrainConfig(steps=1, precision=name))
        steps[name] = torch.cat([p.detach().flatten() for p in net.parameters()]) - initial
    assert steps["fp32"].norm() > 0
    assert torch.nn.functional.cosine_similarity(steps["bf16"], steps["fp32"], dim=0) > 0.99


def test_fp16_scales_the_loss_and_skips_a_step_whose_gradients_overflowed():
    net, method, splits = _setup()
    precision = Precision("fp16", "cpu")
    images, labels, _ = next(splits.train.epoch(0))
    (arch,) = method.sampler.ask(1)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    with precision.autocast():
        loss = torch.nn.functional.cross_entropy(net(images, arch), labels)
    assert float(precision.scale(loss.detach())) == pytest.approx(float(loss.detach()) * 2.0 ** 16, rel=1e-3)
    before = copy.deepcopy(net.state_dict())
    (precision.scale(loss) * float("inf")).backward()  # an overflow
    precision.unscale([optimizer])
    precision.step([optimizer])
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert precision.state_dict()["scaler"]["scale"] == 2.0 ** 15  # halved after the overflow


def test_an_fp16_run_resumes_bit_identically_with_its_loss_scale():
    config = TrainConfig(epochs=2, precision="fp16", checkpoint_every_steps=10)
    net, method, splits = _setup()
    saved = []
    train(net, method, splits.train, config, save_checkpoint=lambda s: saved.append(copy.deepcopy(s)))
    assert "scaler" in saved[0]["precision"]
    again, method, splits = _setup()
    train(again, method, splits.train, config, resume_from=saved[1])
    for (name, a), b in zip(net.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name


def test_channels_last_trains_the_same_network():
    net, method, splits = _setup()
    train(net, method, splits.train, TrainConfig(steps=10, channels_last=True))
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    reference, method, splits = _setup()
    train(reference, method, splits.train, TrainConfig(steps=10, channels_last=False))
    for a, b in zip(net.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_a_compiled_stand_alone_model_trains_as_the_eager_one():
    from nas.training.standalone import StandaloneStep

    space = get_space("nb201", Skeleton(1, 10, 8, width=4, cells=1))
    splits = make_splits(load_data(None), DataConfig(batch_size=32), 0)
    arch = space.sample(__import__("numpy").random.default_rng(0))
    models = []
    for compiled in (False, True):
        torch.manual_seed(0)
        model = space.build_model(arch)
        # aot_eager traces the model as inductor does, without compiling C++ for seconds.
        step = StandaloneStep(torch.compile(model, backend="aot_eager") if compiled else None)
        train(model, step, splits.full_train, TrainConfig(steps=3, checkpoint_every_steps=0))
        models.append(model)
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_a_checkpoint_from_before_precisions_resumes_in_fp32():
    net, method, splits = _setup()
    saved = []
    train(net, method, splits.train, TrainConfig(epochs=2, precision="fp32"),
          save_checkpoint=lambda s: saved.append(copy.deepcopy(s)))
    old = {k: v for k, v in saved[0].items() if k != "precision"}  # as written before
    again, method, splits = _setup()
    # "bf16" (what "auto" means on a GPU) is not what the run trained with: it stays fp32.
    train(again, method, splits.train, TrainConfig(epochs=2, precision="bf16"), resume_from=old)
    for (name, a), b in zip(net.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name


def test_pada_under_fp16_lets_the_scaler_skip_an_overflowed_step_and_records_nothing():
    space = get_space("nb201", Skeleton(1, 10, 8, width=4, cells=1))
    method = METHODS.get("pada")(space, seed=0)
    net = method.build_supernet()
    splits = make_splits(load_data(None), DataConfig(batch_size=32), 0)
    context = StepContext()
    context.precision = Precision("fp16", "cpu")
    method.setup(net, torch.optim.SGD(net.parameters(), lr=0.1), splits.train, context)
    images, labels, ids = next(splits.train.epoch(0))
    method.train_step(net, images, labels, ids, context)
    for p in net.parameters():
        if p.grad is not None:
            p.grad.fill_(float("inf"))  # what an fp16 overflow leaves
    before = copy.deepcopy(method._path_count)
    method.clip_gradients(list(net.parameters()), 5.0)  # no error: the scaler will skip it
    assert method._path_count == before
    context.precision = Precision("fp32", "cpu")  # without loss scaling it is an error
    method.train_step(net, images, labels, ids, context)
    for p in net.parameters():
        if p.grad is not None:
            p.grad.fill_(float("inf"))
    with pytest.raises(TrainingError, match="gradient norm became inf"):
        method.clip_gradients(list(net.parameters()), 5.0)
