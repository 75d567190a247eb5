"""The training-method contract: backward only through the step context, the method's own
optimisers (two of them, checkpointed and resumed), validation batches, single-path gradients."""
from __future__ import annotations

import ast
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nas.data import DataConfig, load_data, make_splits
from search_spaces import Skeleton, get_space
from supernets import METHODS, StepContext, TrainConfig, train
from supernets.loop import Optimisation, StepMethod
from supernets.methods.alphanet import AlphaNet, AlphaNetConfig
from tests.supernets.arch_method import ArchLogits

REPO = Path(__file__).resolve().parents[2]
SKELETON = Skeleton(1, 10, 8, width=4, cells=1)
TINY_OPTIONS = {"gmnas": {"split_at": "0.0,0.5", "score_batches": 1}, "fewshot": {"split_at": 0.5}}


@pytest.fixture(scope="module")
def splits():
    return make_splits(load_data(None), DataConfig(batch_size=32, train_subset=320), 0)


def _method(name, space, **options):
    cls = METHODS.get(name)
    return cls(space, cls.config_class(**{**TINY_OPTIONS.get(name, {}), **options}), seed=0)


# ---- backward goes through the context ----------------------------------------------------
def _backward_calls(path: Path) -> list[int]:
    """Lines of `path` that call `X.backward(...)` (e.g. `loss.backward()`,
    `torch.autograd.backward(x)`) for any X but a step context named `context`."""
    tree = ast.parse(path.read_text())
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "backward"
            and not (isinstance(node.func.value, ast.Name) and node.func.value.id == "context")]


def test_backward_is_called_only_in_the_step_context():
    calls = {str(p.relative_to(REPO)): _backward_calls(p)
             for p in sorted((REPO / "supernets").rglob("*.py"))}
    outside = {path: lines for path, lines in calls.items()
               if lines and path != "supernets/step_context.py"}
    assert outside == {}
    assert len(calls["supernets/step_context.py"]) == 1  # the one call, in StepContext.backward


def test_the_search_for_backward_calls_finds_them(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("loss.backward()\ntorch.autograd.backward(x)\ncontext.backward(loss)\n"
                      "(context or self.context).backward(loss)\nnet.forward(x)\n")
    assert _backward_calls(sample) == [1, 2, 4]


@pytest.mark.parametrize("name", ["spos", "alphanet", "pada", "fewshot", "gmnas"])
def test_every_backward_of_a_run_is_a_context_backward(name, splits, monkeypatch):
    """Counted at torch itself: each call of Tensor.backward during training happens inside
    StepContext.backward, as many times a step as the method declares."""
    inside = {"flag": False, "context": 0, "torch": 0, "stray": 0}
    original_tensor_backward, original_context_backward = torch.Tensor.backward, StepContext.backward

    def tensor_backward(self, *args, **kwargs):
        inside["torch"] += 1
        inside["stray"] += not inside["flag"]
        return original_tensor_backward(self, *args, **kwargs)

    def context_backward(self, loss, inputs=None):
        inside["flag"], inside["context"] = True, inside["context"] + 1
        try:
            original_context_backward(self, loss, inputs)
        finally:
            inside["flag"] = False

    monkeypatch.setattr(torch.Tensor, "backward", tensor_backward)
    monkeypatch.setattr(StepContext, "backward", context_backward)
    space = get_space("nb201", SKELETON)
    method = _method(name, space)
    torch.manual_seed(0)
    train(method.build_supernet(), method, splits.train, TrainConfig(epochs=1, checkpoint_every_steps=0))
    steps = len(splits.train)
    assert inside["stray"] == 0 and inside["torch"] == inside["context"]
    assert inside["context"] == steps * method.backward_passes()


def test_a_step_that_skips_the_context_is_stopped(splits):
    class BehindTheBack(StepMethod):
        def train_step(self, model, images, labels, ids, context=None):
            loss = model(images.flatten(1)).logsumexp(1).mean()
            loss.backward()  # not through context.backward
            return float(loss.detach())

    model = torch.nn.Linear(64, 10)
    with pytest.raises(RuntimeError, match="called context.backward 0 times"):
        train(model, BehindTheBack(), splits.train, TrainConfig(epochs=1))


# ---- AlphaNet unchanged by the contract ----------------------------------------------------
@pytest.mark.parametrize("distillation", ["alpha", "kl"])
def test_alphanet_sandwich_step_equals_its_gradients_before_the_contract(distillation):
    """tests/data/alphanet_step_gradients.npz was computed by the code before this contract
    (commit af04c9e) on this batch: per parameter the gradient's sum, norm and projection on a
    seeded random vector, and the logged loss."""
    reference = np.load(REPO / "tests" / "data" / "alphanet_step_gradients.npz")
    space = get_space("nb201", SKELETON)
    torch.manual_seed(0)
    net = space.build_supernet().double()
    g = torch.Generator().manual_seed(0)
    images = torch.randn(8, 1, 8, 8, generator=g, dtype=torch.float64)
    method = AlphaNet(space, AlphaNetConfig(distillation=distillation), seed=7)
    loss = method.train_step(net, images, torch.arange(8) % 10, torch.arange(8))
    assert loss == pytest.approx(float(reference[f"{distillation}/loss"]), rel=1e-12)
    got = {}
    for name, p in net.named_parameters():
        if p.grad is not None:
            grad = p.grad.flatten()
            probe = torch.randn(grad.numel(), generator=torch.Generator().manual_seed(1),
                                dtype=torch.float64)
            got[name] = np.array([float(grad.sum()), float(grad.norm()), float(grad @ probe)])
    want = {k.split("/", 1)[1]: reference[k] for k in reference.files
            if k.startswith(f"{distillation}/") and not k.endswith("/loss")}
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-9, atol=1e-12, err_msg=name)


# ---- single-path semantics -----------------------------------------------------------------
# Edge 1<-0 is `none`, so node 1 is a zero node and edge 2<-1's 3x3 conv runs on zeros.
AFTER_NONE = "|none~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"


@pytest.mark.parametrize("name", ["spos", "pada", "fewshot"])
def test_ops_on_a_zero_node_get_no_gradient_and_stay_put(name, splits):
    space = get_space("nb201", SKELETON)
    arch = space.parse(AFTER_NONE)
    indices = tuple(d.index(v) for d, v in zip(space.decisions, arch.values))
    method = _method(name, space)
    torch.manual_seed(0)
    net = method.build_supernet()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    method.setup(net, optimizer, splits.train)
    method.sampler.ask_indices = lambda n=1: [indices] * n
    images, labels, ids = next(splits.train.epoch(0))
    on_zeros = {n: p for n, p in net.named_parameters() if ".edges.2.nor_conv_3x3." in n}
    assert set(k.rsplit(".", 2)[-2] for k in on_zeros) == {"conv", "bn"}
    before = {n: p.detach().clone() for n, p in on_zeros.items()}
    for _ in range(2):  # the second step would apply stale momentum if there were any
        optimizer.zero_grad(set_to_none=True)
        method.train_step(net, images, labels, ids)
        for n, p in on_zeros.items():
            if n.endswith(("conv.weight", "bn.weight")):
                assert p.grad is None, n  # zero input: an all-zero gradient, released
        assert on_zeros[next(n for n in on_zeros if n.endswith("bn.bias"))].grad is not None
        optimizer.step()
    for n, p in on_zeros.items():
        if n.endswith(("conv.weight", "bn.weight")):
            assert torch.equal(p.detach(), before[n]), n  # neither weight decay nor momentum
    used = dict(net.named_parameters())
    conv_used = next(n for n in used if ".edges.5.nor_conv_3x3.conv.weight" in n)
    assert used[conv_used].grad is not None  # an op on a live node still learns


def test_without_the_rule_those_gradients_would_be_all_zero_tensors(splits):
    space = get_space("nb201", SKELETON)
    torch.manual_seed(0)
    net = space.build_supernet()
    images, labels, _ = next(splits.train.epoch(0))
    F.cross_entropy(net(images, space.parse(AFTER_NONE)), labels).backward()
    grads = [p.grad for n, p in net.named_parameters()
             if ".edges.2.nor_conv_3x3.conv.weight" in n]
    assert grads and all(g is not None and not g.any() for g in grads)


# ---- a method with two optimisers ----------------------------------------------------------
def _arch_fresh(seed=0):
    space = get_space("nb201", SKELETON)
    torch.manual_seed(seed)
    method = ArchLogits(space, seed=seed)
    return method.build_supernet(), method


def test_a_method_configures_two_optimisers_the_loop_steps_and_checkpoints(splits):
    net, method = _arch_fresh()
    saved = []
    train(net, method, splits.train, TrainConfig(epochs=1, checkpoint_every_steps=0),
          validation=splits.val_stream, save_checkpoint=lambda s: saved.append(copy.deepcopy(s)))
    assert not torch.equal(method.logits.detach(), torch.zeros_like(method.logits))
    state = saved[-1]
    assert set(state["optimizers"]) == {"weights", "architecture"}
    assert state["optimizers"]["architecture"]["param_groups"][0]["weight_decay"] == 1e-3
    assert state["context"]["validation_position"] == len(splits.train)  # one batch a step


def test_the_validation_loss_reaches_only_the_architecture_parameter(splits):
    net, method = _arch_fresh()
    context = StepContext(splits.val_stream)
    images, labels, ids = next(splits.train.epoch(0))
    state = method.sampler.state_dict()
    method.train_step(net, images, labels, ids, context)
    got = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    assert method.logits.grad is not None and method.logits.grad.abs().sum() > 0
    net.zero_grad(set_to_none=True)
    method.sampler.load_state_dict(state)
    (arch,) = method.sampler.ask(1)
    F.cross_entropy(net(images, arch), labels).backward()  # the training loss alone
    want = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
    assert got.keys() == want.keys() and all(torch.equal(got[n], want[n]) for n in got)


def test_the_two_optimiser_method_resumes_bit_identically_mid_epoch(splits):
    config = TrainConfig(epochs=2, checkpoint_every_steps=3)
    net, method = _arch_fresh()
    saved = []
    train(net, method, splits.train, config, validation=splits.val_stream,
          save_checkpoint=lambda s: saved.append(copy.deepcopy(s)))
    mid = [s for s in saved if s["step"] > 0]
    assert mid and any(s["epoch"] == 1 for s in mid)
    for state in (mid[0], mid[-1]):
        again, resumed = _arch_fresh()
        train(again, resumed, splits.train, config, validation=splits.val_stream,
              resume_from=state)
        assert torch.equal(resumed.logits, method.logits)
        for (key, a), b in zip(net.state_dict().items(), again.state_dict().values()):
            assert torch.equal(a, b), (key, state["epoch"], state["step"])


def test_a_method_needing_validation_batches_says_so_without_them(splits):
    net, method = _arch_fresh()
    with pytest.raises(Exception, match="validation batches"):
        train(net, method, splits.train, TrainConfig(epochs=1))


def test_the_validation_stream_continues_across_epochs_and_from_a_saved_position(splits):
    context = StepContext(splits.val_stream)
    stream = context.validation_batches()
    per_epoch = len(splits.val_stream)
    drawn = [next(stream)[2] for _ in range(per_epoch + 3)]
    assert context.validation_position == per_epoch + 3
    first_epoch = torch.cat(drawn[:per_epoch]).tolist()
    assert len(set(first_epoch)) == len(first_epoch)  # an epoch draws each image at most once
    assert set(first_epoch) <= set(splits.val_stream.indices.tolist())
    assert not torch.equal(drawn[0], drawn[per_epoch])  # the next epoch is reshuffled
    resumed = StepContext(splits.val_stream)
    resumed.load_state_dict({"validation_position": per_epoch - 1})
    again = resumed.validation_batches()
    for expected in drawn[per_epoch - 1:]:
        images, labels, ids = next(again)
        assert torch.equal(ids, expected)


def test_checkpoints_from_before_the_contract_still_resume(splits):
    space = get_space("nb201", SKELETON)
    method = _method("spos", space)
    torch.manual_seed(0)
    net = method.build_supernet()
    saved = []
    train(net, method, splits.train, TrainConfig(epochs=2, checkpoint_every_steps=0),
          save_checkpoint=lambda s: saved.append(copy.deepcopy(s)))
    old = {k: v for k, v in saved[0].items() if k not in ("optimizers", "schedulers", "context")}
    old["optimizer"] = saved[0]["optimizers"]["weights"]
    old["scheduler"] = saved[0]["schedulers"]["weights"]
    method = _method("spos", space)
    torch.manual_seed(0)
    again = method.build_supernet()
    train(again, method, splits.train, TrainConfig(epochs=2, checkpoint_every_steps=0),
          resume_from=old)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                  again.state_dict().values()))


def test_a_checkpoint_of_other_optimisers_is_refused():
    from nas.errors import CheckpointError

    weights = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    optimisation = Optimisation({"weights": weights})
    with pytest.raises(CheckpointError, match="holds optimizers"):
        optimisation.load_state_dict({"optimizers": {"weights": weights.state_dict(),
                                                     "architecture": {}}, "schedulers": {}})


# ---- training samplers ---------------------------------------------------------------------
def test_a_region_samplers_path_weights_average_to_one_under_its_own_draws():
    """E_q[uniform / q] = 1: the weights belong to the paths the sampler draws. Regions of 2 and
    3 candidates of edge 0, drawn with 1/2 each: weights 0.8 and 1.2."""
    from supernets.methods.splitting import RegionSampler
    from supernets.partitioned import Region

    space = get_space("nb201", SKELETON)
    sampler = RegionSampler(space, seed=0)
    sampler.regions = [Region(0, {0: (0, 1)}), Region(1, {0: (2, 3, 4)})]
    draws = sampler.ask_indices(4000)
    weights = np.array([sampler.path_weight(d) for d in draws])
    assert set(np.round(weights, 12)) == {0.8, 1.2}
    assert weights.mean() == pytest.approx(1.0, abs=0.02)


def test_the_uniform_samplers_indices_are_the_architectures_it_asks_for():
    from search_spaces.uniform import UniformSampler

    space = get_space("darts", Skeleton(1, 10, 8, width=4, cells=3))
    a, b = UniformSampler(space, 3), UniformSampler(space, 3)
    assert [space.from_indices(i) for i in a.ask_indices(5)] == b.ask(5)
    assert a.path_weight(a.ask_indices(1)[0]) == 1.0


# ---- splits without branching on the space's name ------------------------------------------
def test_split_decisions_and_criterion_come_from_the_space():
    darts = get_space("darts", Skeleton(1, 10, 8, width=4, cells=3))
    names = [darts.decisions[i].name for i in darts.split_decisions()]
    assert names and all(n.startswith("normal.") and ".op" in n for n in names)
    assert _method("gmnas", darts).criterion() == "within"
    assert METHODS.get("fewshot")(darts).decision == darts.split_decisions()[0]
    nb201 = get_space("nb201", SKELETON)
    assert nb201.split_decisions() == list(range(6)) and _method("gmnas", nb201).criterion() == "cut"


def test_gmnas_can_match_gradients_on_validation_batches_and_resumes_across_the_split(splits):
    space = get_space("nb201", SKELETON)
    config = TrainConfig(epochs=3, checkpoint_every_steps=4)

    def fresh():
        torch.manual_seed(0)
        method = _method("gmnas", space, split_at="0.34,0.67", score_batches=2,
                         score_data="validation")
        return method.build_supernet(), method

    straight, method = fresh()
    saved = []
    train(straight, method, splits.train, config, validation=splits.val_stream,
          save_checkpoint=lambda s: saved.append(copy.deepcopy(s)))
    assert len(straight.regions) == 4
    # one split of the single supernet, then of its two halves: 3 regions x 2 batches
    assert saved[-1]["context"]["validation_position"] == 6
    for state in (saved[2], saved[len(saved) // 2]):
        again, method = fresh()
        train(again, method, splits.train, config, validation=splits.val_stream,
              resume_from=state)
        assert [r.to_state() for r in again.regions] == [r.to_state() for r in straight.regions]
        for (key, a), b in zip(straight.state_dict().items(), again.state_dict().values()):
            if torch.is_tensor(a):
                assert torch.equal(a, b), (key, state["epoch"], state["step"])
