"""DARTS, DrNAS and TangleNAS: the relaxation's math, what they learn, and how they derive.

- DARTS on a tiny synthetic space whose best candidate is known puts its largest weight on it.
- Second-order DARTS's finite-difference gradient equals the exact gradient through the virtual
  step (computed with create_graph).
- DrNAS's weights are Dirichlet(elu(alpha) + 1) draws whose gradient reaches alpha.
- A one-hot mixture runs exactly the architecture's path (nb201, darts, entangled nb201).
- DARTS's discretisation keeps each node's two strongest inputs, never `none`.
- Only these three methods derive an architecture themselves; the others leave it to a searcher.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import ConfigError
from search_spaces import Skeleton, get_space
from search_spaces.base import Architecture, Decision, SearchSpace, Supernet
from search_spaces.relaxation import Mixture
from supernets import METHODS, TrainConfig, train
from supernets.methods.gradient import DARTS, DARTSConfig, DrNAS
from supernets.step_context import StepContext

# ---- a synthetic space: which candidate can fit the labels is known -------------------------
FEATURES, CLASSES = 8, 4
CANDIDATES = ("none", "scrambled", "linear")  # only "linear" sees the informative features


class ToySpace(SearchSpace):
    name = "toy"
    default_width = 1
    default_cells = 1

    def _build_decisions(self):
        return [Decision("op", CANDIDATES)]

    def format(self, values):
        return values[0]

    def parse(self, text):
        return self.architecture([text])

    def build_supernet(self):
        return ToySupernet(self)

    def build_model(self, arch):
        raise NotImplementedError("not exported")

    def relaxed_decisions(self):
        return self.decisions

    def derive(self, probabilities):
        return self.architecture([CANDIDATES[int(np.argmax(probabilities[0]))]])


class ToySupernet(Supernet):
    """"scrambled" is a linear map of the input after a fixed random mixing that destroys the
    label's features with noise; "linear" reads them directly; "none" outputs zeros."""

    def __init__(self, space):
        super().__init__(space)
        self.linear = nn.Linear(FEATURES, CLASSES)
        self.scrambled = nn.Linear(FEATURES, CLASSES)

    def _ops(self, x):
        noise = torch.randn_like(x) * 3.0
        return {"none": torch.zeros(x.shape[0], CLASSES), "scrambled": self.scrambled(noise),
                "linear": self.linear(x)}

    def forward(self, x, arch):
        ops = self._ops(x)
        if isinstance(arch, Mixture):
            w = arch["op"]
            return sum(w[i] * ops[name] for i, name in enumerate(CANDIDATES))
        return ops[arch["op"]]


class ToyBatches:
    def __init__(self, x, y, batch_size=32):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.indices = torch.arange(len(x))

    def __len__(self):
        return len(self.x) // self.batch_size

    def epoch(self, epoch, probabilities=None, start=0) -> Iterator:
        order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(epoch))
        for b in range(start, len(self)):
            ids = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self.x[ids], self.y[ids], ids


def _toy_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    teacher = torch.randn(FEATURES, CLASSES, generator=torch.Generator().manual_seed(99))
    x = torch.randn(n, FEATURES, generator=g)
    return x, (x @ teacher).argmax(1)


@pytest.mark.parametrize("order", [1, 2])
def test_darts_learns_the_known_best_candidate(order):
    space = ToySpace()
    method = DARTS(space, DARTSConfig(order=order, arch_lr=3e-2, arch_weight_decay=0.0), seed=0)
    net = method.build_supernet()
    torch.manual_seed(0)
    train(net, method, ToyBatches(*_toy_data(512, 0)),
          TrainConfig(epochs=8, lr=0.1, checkpoint_every_steps=0),
          validation=ToyBatches(*_toy_data(512, 1)))
    weights = method.probabilities()[0]
    assert int(np.argmax(weights)) == CANDIDATES.index("linear"), weights
    assert weights[CANDIDATES.index("linear")] > 0.5
    assert str(method.derive()) == "linear"


def test_second_order_gradient_matches_the_exact_unrolled_gradient():
    """DARTS's finite difference against autograd through w' = w - xi * dL_train/dw."""
    space = ToySpace()
    method = DARTS(space, DARTSConfig(order=2), seed=0)
    net = method.build_supernet()
    net.scrambled.weight.requires_grad_(False)  # noise input: keep the check deterministic
    net.scrambled.bias.requires_grad_(False)
    net._ops = lambda x: {"none": torch.zeros(x.shape[0], CLASSES),  # noqa: SLF001
                          "scrambled": net.scrambled(x.flip(1)), "linear": net.linear(x)}
    optimisation = method.configure_optimizers(net, TrainConfig(lr=0.05, momentum=0.0),
                                               budget=_budget())
    method.setup(net, optimisation.weights, None, StepContext())
    with torch.no_grad():
        for alpha in method.alphas:
            alpha.copy_(torch.tensor([0.3, -0.2, 0.1]))
    (x, y), (xv, yv) = _toy_data(64, 0), _toy_data(64, 1)
    ours = method.unrolled_alpha_gradients(xv, yv, x, y, StepContext())[0]

    params = {n: p for n, p in net.named_parameters() if p.requires_grad}
    alpha = method.alphas[0]
    decay = optimisation.weights.param_groups[0]["weight_decay"]
    lr = optimisation.weights.param_groups[0]["lr"]

    def loss(p, images, labels, a):
        mixture = Mixture(("op",), (F.softmax(a, -1),))
        out = torch.func.functional_call(net, p, (images, mixture))
        return F.cross_entropy(out, labels)

    # w'(alpha) = w - xi * (dL_train/dw + decay * w), differentiable in alpha: the exact
    # gradient of L_val(w'(alpha), alpha), which DARTS approximates by a finite difference.
    grads_alpha = torch.autograd.grad(loss(params, x, y, alpha), list(params.values()),
                                      create_graph=True)
    unrolled = {n: p - lr * (g + decay * p) for (n, p), g in zip(params.items(), grads_alpha)}
    exact = torch.autograd.grad(loss(unrolled, xv, yv, alpha), alpha)[0]
    np.testing.assert_allclose(ours.numpy(), exact.numpy(), rtol=2e-3, atol=1e-6)


def _budget():
    from supernets.budget import StepBudget
    return StepBudget(10, 1, None, None, None)


def test_drnas_draws_dirichlet_weights_whose_gradient_reaches_alpha():
    space = get_space("nb201", Skeleton(3, 10, 8, width=4, cells=1))
    method = DrNAS(space, seed=0)
    alpha = torch.tensor([0.5, -0.3, 1.2, 0.0, -1.0], requires_grad=True)
    torch.manual_seed(0)
    draws = torch.stack([method.mixing_weights(alpha) for _ in range(4000)])
    concentration = F.elu(alpha.detach()) + 1
    np.testing.assert_allclose(draws.mean(0).detach().numpy(),
                               (concentration / concentration.sum()).numpy(), atol=0.01)
    assert torch.allclose(draws.sum(1), torch.ones(4000))
    (draws[:, 2].mean()).backward()
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0


@pytest.mark.parametrize("space_name,entangled", [("nb201", False), ("nb201", True),
                                                  ("darts", False)])
def test_one_hot_mixture_runs_exactly_the_architectures_path(space_name, entangled):
    space = get_space(space_name, Skeleton(3, 10, 8, width=4, cells=3 if space_name == "darts"
                                           else 1))
    net = (space.build_entangled_supernet() if entangled else space.build_supernet()).eval()
    x = torch.randn(4, 3, 8, 8)
    rng = np.random.default_rng(0)
    for _ in range(3):
        arch = space.sample(rng)
        mixture = _one_hot(space, arch)
        assert torch.allclose(net(x, mixture), net(x, arch), atol=1e-6)
        assert space.derive([w.tolist() for w in mixture.weights]) == arch


def _one_hot(space, arch: Architecture) -> Mixture:
    """The mixture of `arch`: for nb201 its edges; for darts its 8 (edge, op) pairs a cell."""
    if space.name == "nb201":
        return Mixture.one_hot(space.relaxed_decisions(),
                               [d.index(v) for d, v in zip(space.decisions, arch.values)])
    from search_spaces.darts.genotype import CELL_TYPES, NODES, cell_nodes
    from search_spaces.darts.space import RELAXED_OPS
    weights = {d.name: torch.zeros(len(RELAXED_OPS)) for d in space.relaxed_decisions()}
    for cell in CELL_TYPES:
        for k, ((i, j), op_i, op_j) in zip(NODES, cell_nodes(arch.values, cell)):
            weights[f"{cell}.{k}<-{i}"][RELAXED_OPS.index(op_i)] = 1.0
            weights[f"{cell}.{k}<-{j}"][RELAXED_OPS.index(op_j)] = 1.0
    return Mixture(tuple(weights), tuple(weights.values()))


def test_darts_discretisation_keeps_two_strongest_inputs_and_never_none():
    space = get_space("darts", Skeleton(3, 10, 8, width=4, cells=3))
    rows = []
    for d in space.relaxed_decisions():
        row = [0.1] * 8
        row[0] = 0.9  # `none` strongest everywhere: never kept
        if d.name.startswith("normal.4<-"):  # node 4: inputs 3 and 1 strongest
            source = int(d.name.split("<-")[1])
            # index 4 = sep_conv_3x3, 5 = sep_conv_5x5 (RELAXED_OPS)
            row[4 if source == 3 else 5] = {3: 0.5, 1: 0.4}.get(source, 0.2)
        rows.append(row)
    genotype = space.genotype(space.derive(rows))
    assert genotype.normal[4:6] == [("sep_conv_5x5", 1), ("sep_conv_3x3", 3)]
    assert all(op != "none" for op, _ in genotype.normal + genotype.reduce)


def test_darts_discretisation_reads_the_strongest_op_per_input():
    space = get_space("darts", Skeleton(3, 10, 8, width=4, cells=3))
    from search_spaces.darts.space import RELAXED_OPS
    rows = []
    for d in space.relaxed_decisions():
        cell, edge = d.name.split(".")
        k, i = map(int, edge.split("<-"))
        row = [0.0] * 8
        row[RELAXED_OPS.index("dil_conv_3x3" if cell == "reduce" else "sep_conv_3x3")] = \
            1.0 if i >= k - 2 else 0.3  # the two latest inputs win
        rows.append(row)
    arch = space.derive(rows)
    assert arch == space.parse(
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), "
        "('sep_conv_3x3', 2), ('sep_conv_3x3', 2), ('sep_conv_3x3', 3), ('sep_conv_3x3', 3), "
        "('sep_conv_3x3', 4)], normal_concat=[2, 3, 4, 5], reduce=[('dil_conv_3x3', 0), "
        "('dil_conv_3x3', 1), ('dil_conv_3x3', 1), ('dil_conv_3x3', 2), ('dil_conv_3x3', 2), "
        "('dil_conv_3x3', 3), ('dil_conv_3x3', 3), ('dil_conv_3x3', 4)], "
        "reduce_concat=[2, 3, 4, 5])")


@pytest.mark.parametrize("method,space_name", [("darts", "mobilenet"), ("drnas", "mobilenet"),
                                               ("tangle", "darts")])
def test_methods_refuse_spaces_they_cannot_mix(method, space_name):
    space = get_space(space_name, Skeleton(3, 10, 8, width=4, cells=2))
    with pytest.raises(ConfigError, match="--method"):
        METHODS.get(method)(space)


ARCHITECTURE_WEIGHT_METHODS = ("darts", "drnas", "tangle")


@pytest.mark.parametrize("name", sorted({*METHODS.names(), *ARCHITECTURE_WEIGHT_METHODS}))
def test_only_methods_with_architecture_weights_derive_an_architecture(name):
    """`derive()` is the method's own choice: gradient methods read it from their weights,
    single-path methods leave it to a searcher (None)."""
    space = get_space("nb201", Skeleton(1, 10, 8, width=4, cells=1))
    cls = METHODS.get(name)
    options = {"gmnas": {"split_at": "0.0,0.5", "score_batches": 1},
               "fewshot": {"split_at": 0.5}}.get(name, {})
    derived = cls(space, cls.config_class(**options), seed=0).derive()
    if name not in ARCHITECTURE_WEIGHT_METHODS:
        assert derived is None
        return
    assert isinstance(derived, Architecture) and derived.space == space.name
    assert space.parse(str(derived)) == derived


def test_weights_step_leaves_alpha_alone_and_architecture_step_leaves_weights_alone():
    """The step's two passes: alpha's gradient from the validation loss only."""
    space = get_space("nb201", Skeleton(3, 10, 8, width=4, cells=1))
    method = DARTS(space, seed=0)
    net = method.build_supernet()
    optimisation = method.configure_optimizers(net, TrainConfig(), _budget())
    (x, y), (xv, yv) = (torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))), \
        (torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,)))
    method.setup(net, optimisation.weights, None, StepContext())
    method.architecture_step(xv, yv, x, y, StepContext())
    assert all(p.grad is None for p in net.parameters())
    expected = torch.autograd.grad(
        F.cross_entropy(net(xv, method.mixture()), yv), method.alphas)
    np.testing.assert_allclose(method.alphas[0].grad.numpy(), expected[0].numpy(), rtol=1e-5,
                               atol=1e-7)
    before = [a.grad.clone() for a in method.alphas]
    loss = F.cross_entropy(net(x, method.mixture().detach()), y)
    StepContext().backward(loss, inputs=list(net.parameters()))
    assert all(torch.equal(a.grad, b) for a, b in zip(method.alphas, before))
    assert any(p.grad is not None for p in net.parameters())
