"""PA&DA: smoothed score distributions, logit-gradient sample scores, the "code" mode's starved
parameter-free ops, exact unbiasedness of importance weighting, and training with exact resume."""
from __future__ import annotations

import copy
import io
import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.config import parse_options
from nas.data import DataConfig, load_data, make_splits
from nas.data.batches import BatchSource
from nas.errors import ConfigError
from search_spaces import Skeleton, get_space
from search_spaces.base import Decision, SearchSpace, Supernet
from supernets import METHODS, TrainConfig, train
from supernets.methods.pada import PADA, PADAConfig, logit_gradient_norms

TINY = {"nb201": Skeleton(1, 10, 8, width=4, cells=1),
        "darts": Skeleton(1, 10, 8, width=4, cells=3),
        "mobilenet": Skeleton(1, 10, 8, width=4, cells=1)}


@pytest.fixture(scope="module")
def splits():
    return make_splits(load_data(None), DataConfig(batch_size=16, train_subset=60), 0)


def _method(space, **options) -> PADA:
    return METHODS.get("pada")(space, PADAConfig(**options), seed=0)


def _set_up(space_name, splits, **options):
    space = get_space(space_name, TINY[space_name])
    method = _method(space, **options)
    torch.manual_seed(0)
    net = method.build_supernet()
    method.setup(net, None, splits.train)
    return space, net, method


def _force_path(method: PADA, indices) -> None:
    method.sampler.ask_indices = lambda n=1: [tuple(indices)] * n


def test_path_probabilities_are_smoothed_normalised_scores(splits):
    _, _, method = _set_up("nb201", splits)
    recorded = [((3, 3, 3, 3, 3, 3), 2.0), ((3, 1, 1, 1, 1, 1), 4.0), ((0, 1, 2, 3, 4, 0), 6.0)]
    method.on_epoch_start(1, 4)
    for indices, norm in recorded:
        method.record_path_score(indices, norm)
    method.on_epoch_end(1)
    tau = 0.25
    for d, probabilities in enumerate(method.sampler.probabilities):
        drawn = {i[d] for i, _ in recorded}
        seen = {c: np.mean([n for i, n in recorded if i[d] == c]) for c in drawn}
        fill = np.mean(list(seen.values()))  # a candidate never drawn gets its decision's mean
        scores = np.array([seen.get(c, fill) for c in range(5)])
        np.testing.assert_allclose(probabilities, tau * scores / scores.sum() + (1 - tau) / 5,
                                   rtol=1e-12)
    # next epoch only (0,...,0) is drawn: the others keep their last scores
    method.on_epoch_start(2, 4)
    method.record_path_score((0,) * 6, 10.0)
    method.on_epoch_end(2)
    # decision 0: candidate 0 rescored, 3 keeps its mean (2+4)/2, the never drawn get mean(10, 3)
    scores = np.array([10.0, 6.5, 6.5, 3.0, 6.5])
    np.testing.assert_allclose(method.sampler.probabilities[0],
                               0.5 * scores / scores.sum() + 0.5 / 5, rtol=1e-12)


def test_sampler_draws_each_decision_from_its_probabilities(splits):
    _, _, method = _set_up("nb201", splits)
    wanted = [[0.05, 0.1, 0.2, 0.3, 0.35]] * 3 + [[0.6, 0.1, 0.1, 0.1, 0.1]] * 3
    method.sampler.set_probabilities(wanted)
    draws = np.array(method.sampler.ask_indices(4000))  # (4000, 6)
    for d, p in enumerate(wanted):
        frequency = np.bincount(draws[:, d], minlength=5) / len(draws)
        assert np.all(np.abs(frequency - p) < 4 * np.sqrt(np.array(p) * (1 - np.array(p)) / 4000))


def test_data_probabilities_are_smoothed_mean_sample_scores(splits):
    _, _, method = _set_up("nb201", splits)
    ids = splits.train.indices
    method.on_epoch_start(2, 4)
    method.record_sample_scores(ids[[0, 1, 1, 2]], torch.tensor([1.0, 2.0, 4.0, 3.0]))
    assert method.data_distribution() is None  # epoch 0 and until an epoch ends: a plain shuffle
    method.on_epoch_end(2)
    scores = np.zeros(len(ids))
    scores[:3] = [1.0, 3.0, 3.0]  # image 1 drawn twice: the mean; never drawn: 0
    np.testing.assert_allclose(method.data_distribution(),
                               0.5 * scores / scores.sum() + 0.5 / len(ids), rtol=1e-12)


def test_batch_source_draws_images_from_the_data_distribution():
    indices = torch.tensor([1, 3, 4, 6, 7, 9])
    images, labels = torch.zeros(10, 1, 8, 8, dtype=torch.uint8), torch.zeros(10, dtype=torch.long)
    source = BatchSource(images, labels, indices, torch.zeros(1), torch.ones(1), batch_size=6,
                         is_training=True)
    method = _method(get_space("nb201", TINY["nb201"]))
    method.setup(nn.Linear(1, 1), None, source)
    method.on_epoch_start(1, 2)
    method.record_sample_scores(indices, torch.tensor([1.0, 2.0, 3.0, 4.0, 0.5, 0.0]))
    method.on_epoch_end(1)
    p = method.data_distribution()
    drawn = torch.cat([ids for epoch in range(2000) for _, _, ids in source.epoch(epoch, p)])
    frequency = np.array([(drawn == i).float().mean().item() for i in indices])
    assert np.all(np.abs(frequency - p) < 4 * np.sqrt(p * (1 - p) / len(drawn))), (frequency, p)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_sample_score_is_the_norm_of_the_per_sample_loss_gradient_wrt_logits(label_smoothing):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 10, generator=generator, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 10, (6,), generator=generator)
    per_sample = F.cross_entropy(logits, labels, reduction="none", label_smoothing=label_smoothing)
    (gradient,) = torch.autograd.grad(per_sample.sum(), logits)  # row n: d CE_n / d logits_n
    torch.testing.assert_close(logit_gradient_norms(logits.detach(), labels, label_smoothing),
                               gradient.norm(dim=1))


def test_train_step_records_each_images_logit_gradient_norm(splits):
    space, net, method = _set_up("nb201", splits)
    path = (3, 1, 2, 0, 4, 3)
    _force_path(method, path)
    images, labels, ids = next(splits.train.epoch(0))
    with torch.no_grad():
        expected = logit_gradient_norms(net(images, space.from_indices(path)), labels)
    method.train_step(net, images, labels, ids)
    positions = method._position[ids]
    torch.testing.assert_close(method._sample_sum[positions], expected.double())


def test_paper_score_is_the_unweighted_pre_clip_gradient_norm_of_the_path(splits):
    space, net, method = _set_up("nb201", splits)
    method.sampler.set_probabilities([[0.1, 0.1, 0.2, 0.3, 0.3]] * 6)
    path = (3, 1, 2, 0, 4, 3)
    _force_path(method, path)
    images, labels, ids = next(splits.train.epoch(0))
    method.train_step(net, images, labels, ids)
    weighted = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in net.parameters()
                                                     if p.grad is not None])).item()
    method.clip_gradients(list(net.parameters()), 1e-3)
    clipped = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in net.parameters()
                                                    if p.grad is not None])).item()
    assert clipped == pytest.approx(1e-3, rel=1e-4)
    path_weight = math.prod(1 / (5 * [0.1, 0.1, 0.2, 0.3, 0.3][c]) for c in path)
    for d, c in enumerate(path):
        assert method._path_count[d][c] == 1
        assert method._path_sum[d][c] == pytest.approx(weighted / path_weight, rel=1e-6)


def _own_norms(net, op: str, uses: int) -> float:
    """The official per-op score of one step: summed norms of the op's gradients / its uses."""
    return sum(p.grad.norm().item() for name, p in net.named_parameters()
               if f".{op}." in name and p.grad is not None) / uses


def test_code_mode_leaves_parameter_free_ops_only_their_uniform_share(splits):
    space, net, method = _set_up("nb201", splits, path_scores="code", importance_weighting=False)
    batches = splits.train.epoch(0)
    running = {"nor_conv_1x1": 0.0, "nor_conv_3x3": 0.0}
    method.on_epoch_start(2, 5)
    for path in ((3, 3, 2, 1, 0, 4), (3, 2, 2, 2, 0, 1)):  # never a parameterised op elsewhere
        _force_path(method, path)
        images, labels, ids = next(batches)
        net.zero_grad(set_to_none=True)
        method.train_step(net, images, labels, ids)
        method.clip_gradients(list(net.parameters()), 5.0)
        for op, index in (("nor_conv_1x1", 2), ("nor_conv_3x3", 3)):
            running[op] = (running[op] + _own_norms(net, op, path.count(index))) / 2
    method.on_epoch_end(2)
    tau, total = 0.4, sum(running.values())
    expected = [(1 - tau) / 5, (1 - tau) / 5, tau * running["nor_conv_1x1"] / total + (1 - tau) / 5,
                tau * running["nor_conv_3x3"] / total + (1 - tau) / 5, (1 - tau) / 5]
    for probabilities in method.sampler.probabilities:  # one distribution shared by all edges
        np.testing.assert_allclose(probabilities, expected, rtol=1e-6)


def test_code_mode_refuses_a_space_whose_candidates_own_no_weights(splits):
    with pytest.raises(ConfigError, match="use path_scores=paper"):
        _set_up("mobilenet", splits, path_scores="code")


class _ToySpace(SearchSpace):
    """Two decisions (3 and 2 candidates) selecting the weights of a two-layer network."""

    name, default_width, default_cells = "toy", 1, 1

    def _build_decisions(self):
        return [Decision("first", ("a", "b", "c")), Decision("second", ("d", "e"))]

    def format(self, values):
        return ",".join(values)

    def parse(self, text):
        return self.architecture(text.split(","))

    def build_supernet(self):
        return _ToySupernet(self)

    def build_model(self, arch):
        raise NotImplementedError


class _ToySupernet(Supernet):
    def __init__(self, space):
        super().__init__(space)
        g = torch.Generator().manual_seed(0)
        def weight(rows):
            return nn.Parameter(torch.randn(rows, 4, generator=g, dtype=torch.float64))

        self.first = nn.ParameterDict({c: weight(4) for c in "abc"})
        self.second = nn.ParameterDict({c: weight(3) for c in "de"})

    def forward(self, x, arch):  # (B, 4) -> (B, 3)
        return torch.tanh(x @ self.first[arch["first"]].T) @ self.second[arch["second"]].T


def _gradient(net) -> torch.Tensor:
    return torch.cat([torch.zeros(p.numel(), dtype=p.dtype) if p.grad is None else p.grad.flatten()
                      for p in net.parameters()])


def _expected_gradient(method, net, x, y, ids) -> torch.Tensor:
    """E over (path, ordered batch of 2 images) drawn by the method, enumerated exactly."""
    total = 0.0
    p = method.data_distribution()
    for path in itertools.product(range(3), range(2)):
        _force_path(method, path)
        for n1, n2 in itertools.product(range(len(x)), repeat=2):
            net.zero_grad(set_to_none=True)
            method.train_step(net, x[[n1, n2]], y[[n1, n2]], ids[[n1, n2]])
            total = total + method.sampler.probability(path) * p[n1] * p[n2] * _gradient(net)
    return total


def test_importance_weighted_gradient_is_exactly_unbiased():
    space = _ToySpace()
    net = space.build_supernet()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(3, 4, generator=g, dtype=torch.float64), torch.tensor([0, 2, 1])
    ids = torch.tensor([10, 11, 12])  # dataset indices, not positions
    method = _method(space)
    method.setup(net, None, SimpleNamespace(indices=ids))
    method.on_epoch_start(1, 2)
    for path, norm in (((0, 0), 1.0), ((1, 0), 5.0), ((2, 1), 2.0), ((0, 1), 0.5)):
        method.record_path_score(path, norm)
    method.record_sample_scores(ids, torch.tensor([1.0, 4.0, 0.25]))
    method.on_epoch_end(1)
    assert not np.allclose(method.data_distribution(), 1 / 3)
    assert not np.allclose(method.sampler.probabilities[0], 1 / 3)

    uniform = 0.0
    for arch in space.enumerate():
        for n in range(3):
            net.zero_grad(set_to_none=True)
            F.cross_entropy(net(x[n:n + 1], arch), y[n:n + 1]).backward()
            uniform = uniform + _gradient(net) / (space.size() * 3)
    torch.testing.assert_close(_expected_gradient(method, net, x, y, ids), uniform,
                               rtol=1e-12, atol=1e-14)
    unweighted = _method(space, importance_weighting=False)  # the official code: biased
    unweighted.setup(net, None, SimpleNamespace(indices=ids))
    unweighted.load_state_dict(method.state_dict())
    assert not torch.allclose(_expected_gradient(unweighted, net, x, y, ids), uniform, rtol=1e-3)


def _roundtrip(state):
    """Through bytes and back with weights_only=True, as checkpoints are loaded."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("space_name,options", [("nb201", {}), ("darts", {}), ("mobilenet", {}),
                                                ("nb201", {"path_scores": "code"})])
def test_trains_and_resumes_bit_identically(space_name, options, splits):
    config = TrainConfig(epochs=2, checkpoint_every_steps=2)
    _, net, method = _set_up(space_name, splits, **options)
    saved = []
    train(net, method, splits.train, config,
          save_checkpoint=lambda state: saved.append(copy.deepcopy(state)))
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    assert method.data_distribution() is not None
    assert any(not np.allclose(row, 1 / len(row)) for row in method.sampler.probabilities)
    resumable = [s for s in saved if s["epoch"] == 1]  # epoch 1 draws from the learnt distributions
    assert [s["step"] for s in resumable] == [0, 2]
    for state in resumable:
        _, again, resumed = _set_up(space_name, splits, **options)
        train(again, resumed, splits.train, config, resume_from=_roundtrip(state))
        for (name, a), b in zip(net.state_dict().items(), again.state_dict().values()):
            assert torch.equal(a, b), (name, state["step"])
        assert resumed.sampler.probabilities == method.sampler.probabilities
        assert torch.equal(torch.as_tensor(resumed.data_distribution()),
                           torch.as_tensor(method.data_distribution()))


def test_options_parse_and_bad_values_are_refused():
    assert parse_options(PADAConfig, ["importance_weighting=false"]).importance_weighting is False
    with pytest.raises(ConfigError, match="path_scores"):
        PADAConfig(path_scores="gradients")
    assert math.isclose(PADAConfig().label_smoothing, 0.0)  # the official script: plain CE


def test_literal_option_parses_from_the_command_line():
    assert parse_options(PADAConfig, ["path_scores=code"]).path_scores == "code"


def test_a_literal_option_outside_its_values_is_a_one_line_error():
    with pytest.raises(ConfigError, match="path_scores='both'"):
        parse_options(PADAConfig, ["path_scores=both"])


def test_an_overflowing_importance_weight_stops_training_with_a_clear_error():
    from nas.errors import TrainingError
    space = get_space("nb201", Skeleton(1, 10, 8, width=4, cells=1))
    method = PADA(space, seed=0)
    net = space.build_supernet()
    parameters = list(net.parameters())
    images, labels = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    method.setup(net, torch.optim.SGD(parameters, lr=0.1), SimpleNamespace(indices=torch.arange(4)))
    method.sampler.set_probabilities([[1 - 4e-38, 1e-38, 1e-38, 1e-38, 1e-38]] * 6)
    method.sampler.rng = np.random.default_rng(0)
    method.sampler.ask_indices = lambda n=1: [(1,) * 6]  # the rarest path: weight ~ 1e222
    method.train_step(net, images, labels, torch.arange(4))
    with pytest.raises(TrainingError, match="importance_weighting=false"):
        method.clip_gradients(parameters, 5.0)
