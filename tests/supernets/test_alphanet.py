"""AlphaNet: alpha-divergence against closed forms, its gradient surrogate against autograd, the
sandwich step, the largest/smallest subnets, and training + exact resume on every space."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.config import parse_options
from nas.data import DataConfig, load_data, make_splits
from nas.errors import ConfigError
from search_spaces import SearchSpace, Skeleton, get_space
from search_spaces.uniform import UniformSampler
from supernets import METHODS, TrainConfig, train
from supernets.methods.alphanet import AlphaNet, AlphaNetConfig
from supernets.methods.divergence import (adaptive_alpha_divergence, alpha_divergence,
                                          kl_distillation)

TINY = {"nb201": Skeleton(1, 10, 8, width=4, cells=1),
        "darts": Skeleton(1, 10, 8, width=4, cells=1),
        "mobilenet": Skeleton(1, 10, 8, width=4, cells=1)}
# p and q of the hand-computed closed forms; their logits are log p and log q.
P_HAND, Q_HAND = [1 / 2, 1 / 4, 1 / 4], [1 / 8, 3 / 8, 1 / 2]
NO_CLIP = 1e9


def _hand_logits() -> tuple[torch.Tensor, torch.Tensor]:
    """(student logits log q, teacher logits log p), one sample, float64."""
    return (torch.tensor([Q_HAND], dtype=torch.float64).log(),
            torch.tensor([P_HAND], dtype=torch.float64).log())


def _random_logits(seed: int, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(6, 5, generator=g, dtype=torch.float64) * scale,
            torch.randn(6, 5, generator=g, dtype=torch.float64) * scale)


def _direct(student: torch.Tensor, teacher: torch.Tensor, alpha: float) -> torch.Tensor:
    """D_alpha(p || q) per sample straight from its definition, differentiable in q."""
    log_q, log_p = F.log_softmax(student, dim=1), F.log_softmax(teacher, dim=1)
    q, p = log_q.exp(), log_p.exp()
    if alpha == 0:
        return (q * (log_q - log_p)).sum(dim=1)  # KL(q || p)
    if alpha == 1:
        return (p * (log_p - log_q)).sum(dim=1)  # KL(p || q)
    return (q * ((p / q) ** alpha - 1)).sum(dim=1) / (alpha * (alpha - 1))


# ---- the divergence ------------------------------------------------------------------------
@pytest.mark.parametrize("alpha, expected", [
    (-1.0, 19 / 64),  # (sum q^2/p - 1) / 2
    (0.5, 4 * (1 - (1 / 4 + math.sqrt(3 / 32) + math.sqrt(1 / 8)))),  # 4 (1 - sum sqrt(pq))
    (2.0, 31 / 48),  # (sum p^2/q - 1) / 2
    (0.0, 1 / 8 * math.log(1 / 4) + 3 / 8 * math.log(3 / 2) + 1 / 2 * math.log(2)),  # KL(q||p)
    (1.0, 1 / 2 * math.log(4) + 1 / 4 * math.log(2 / 3) + 1 / 4 * math.log(1 / 2)),  # KL(p||q)
])
def test_divergence_equals_its_closed_form_on_hand_distributions(alpha, expected):
    student, teacher = _hand_logits()
    value, _ = alpha_divergence(student, teacher, alpha, iw_clip=NO_CLIP)
    assert value.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("limit, direct_alpha", [(1.0, 1), (0.0, 0)])
def test_general_formula_tends_to_the_kl_limits(limit, direct_alpha):
    """alpha -> 1: KL(p||q); alpha -> 0: KL(q||p). The general formula at limit +- 1e-4
    (tolerance 0 forces it), the limit branch and a direct KL agree."""
    student, teacher = _random_logits(0)
    kl = _direct(student, teacher, direct_alpha)
    branch, _ = alpha_divergence(student, teacher, limit, iw_clip=NO_CLIP)
    assert torch.allclose(branch, kl, rtol=1e-12, atol=0)
    for offset in (1e-4, -1e-4):
        general, _ = alpha_divergence(student, teacher, limit + offset, iw_clip=NO_CLIP,
                                      limit_tolerance=0.0)
        assert torch.allclose(general, kl, atol=1e-3, rtol=0), offset
        nearer, _ = alpha_divergence(student, teacher, limit + offset / 100, iw_clip=NO_CLIP,
                                     limit_tolerance=0.0)
        assert (nearer - kl).abs().max() < (general - kl).abs().max() / 10  # converges
    outside, _ = alpha_divergence(student, teacher, limit + 2e-3, iw_clip=NO_CLIP)
    assert torch.allclose(outside, kl, atol=2e-2, rtol=0)


@pytest.mark.parametrize("alpha", [-1.0, -0.5, 0.0, 0.3, 0.5, 1.0, 2.0])
def test_surrogate_gradient_equals_autograd_of_the_divergence(alpha):
    student, teacher = _random_logits(1, scale=2.0)
    student.requires_grad_(True)
    value, surrogate = alpha_divergence(student, teacher, alpha, iw_clip=NO_CLIP)
    (got,) = torch.autograd.grad(surrogate.sum(), student)
    direct = _direct(student, teacher, alpha)
    (want,) = torch.autograd.grad(direct.sum(), student)
    assert torch.allclose(value, direct.detach(), rtol=1e-10, atol=1e-12)
    assert torch.allclose(got, want, rtol=1e-9, atol=1e-12)


def test_clipping_matches_hand_values_and_bounds_the_weights():
    student, teacher = _hand_logits()
    student.requires_grad_(True)
    # alpha = 2: w = (4, 2/3, 1/2), w^2 = (16, 4/9, 1/4) -> (5, 4/9, 1/4) at iw_clip 5.
    value, surrogate = alpha_divergence(student, teacher, 2.0, iw_clip=5.0)
    assert value.item() == pytest.approx(-1 / 24, rel=1e-12)
    q = torch.tensor(Q_HAND, dtype=torch.float64)
    rho = torch.tensor([5, 4 / 9, 1 / 4], dtype=torch.float64) / 2 + 1 / 2
    (got,) = torch.autograd.grad(surrogate.sum(), student)
    assert torch.allclose(got[0], -(q * rho - q * (q * rho).sum()), rtol=1e-12)
    # alpha -> 0 clips w itself: w_0 = 4 -> 2.
    value, _ = alpha_divergence(student, teacher, 0.0, iw_clip=2.0)
    expected = -(1 / 8 * math.log(2) + 3 / 8 * math.log(2 / 3) + 1 / 2 * math.log(1 / 2))
    assert value.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("alpha", [-1.0, 2.0, 3.0])
def test_clipped_gradient_stays_bounded_however_far_the_teacher(alpha):
    """|dD/dz_j| = q_j |rho_j - E_q rho| <= 2 max|rho| <= 2 (clip/|alpha| + |1/(alpha(alpha-1))|).
    Unclipped it is unbounded for alpha < 0 or > 1; for 0 < alpha < 1, q w^alpha =
    q^(1-alpha) p^alpha <= 1 bounds it anyway, so those alphas could not tell clipping apart."""
    bound = 2 * (5.0 / abs(alpha) + abs(1 / (alpha * (alpha - 1))))
    student, teacher = _random_logits(2, scale=30.0)
    student.requires_grad_(True)
    for iw_clip, is_bounded in ((5.0, True), (NO_CLIP, False)):
        _, surrogate = alpha_divergence(student, teacher, alpha, iw_clip=iw_clip)
        (grad,) = torch.autograd.grad(surrogate.sum(), student)
        assert bool(grad.abs().max() <= bound) == is_bounded, iw_clip


def test_adaptive_loss_takes_the_larger_divergence_per_sample():
    # Sample 0: the teacher is near-certain where the student is not (D_{-1} wins);
    # sample 1: the student is near-certain where the teacher is not (D_{+1} = KL(p||q) wins).
    teacher = torch.tensor([[0.01, 0.99], [0.5, 0.5]], dtype=torch.float64).log()
    student = torch.tensor([[0.5, 0.5], [0.01, 0.99]], dtype=torch.float64).log()
    student.requires_grad_(True)
    d_min, s_min = alpha_divergence(student, teacher, -1.0, iw_clip=5.0)
    d_max, s_max = alpha_divergence(student, teacher, 1.0, iw_clip=5.0)
    assert d_min[0] > d_max[0] and d_min[1] < d_max[1]
    surrogate, value = adaptive_alpha_divergence(student, teacher, -1.0, 1.0, iw_clip=5.0)
    assert not value.requires_grad
    assert value.item() == pytest.approx((d_min[0] + d_max[1]).item() / 2, rel=1e-12)
    (got,) = torch.autograd.grad(surrogate, student)
    (want,) = torch.autograd.grad((s_min[0] + s_max[1]) / 2, student)
    assert torch.allclose(got, want, rtol=1e-12, atol=0)


def test_kl_distillation_is_forward_kl_with_gradient_q_minus_p():
    student, teacher = _random_logits(3)
    student.requires_grad_(True)
    loss, value = kl_distillation(student, teacher)
    assert value.item() == pytest.approx(_direct(student, teacher, 1).mean().item(), rel=1e-12)
    (grad,) = torch.autograd.grad(loss, student)
    want = (F.softmax(student, 1) - F.softmax(teacher, 1)).detach() / len(student)
    assert torch.allclose(grad, want, rtol=1e-10, atol=1e-14)


# ---- configuration and the largest / smallest subnets --------------------------------------
def test_options_parse_and_bad_values_name_the_rule():
    config = parse_options(AlphaNetConfig, ["paths_per_step=3", "sandwich_rule=false",
                                            "alpha_min=-0.5"])
    assert (config.paths_per_step, config.sandwich_rule, config.alpha_min) == (3, False, -0.5)
    assert AlphaNetConfig().label_smoothing == 0.1
    for bad in ({"paths_per_step": 1}, {"distillation": "js"}, {"alpha_min": 2.0},
                {"iw_clip": 0.0}, {"grad_clip_value": -1.0}, {"alpha_max": math.nan}):
        with pytest.raises(ConfigError):
            AlphaNetConfig(**bad)


def test_distillation_option_parses_from_the_command_line():
    assert parse_options(AlphaNetConfig, ["distillation=kl"]).distillation == "kl"


def test_space_without_extremes_refuses_the_sandwich_rule():
    space = get_space("nb201", TINY["nb201"])
    for extreme in (SearchSpace.largest, SearchSpace.smallest):
        with pytest.raises(ConfigError, match="space nb201 defines no .* the sandwich rule"):
            extreme(space)


@pytest.mark.parametrize("name, samples", [("nb201", 200), ("darts", 200), ("mobilenet", 50)])
def test_largest_and_smallest_bound_random_subnets(name, samples):
    skeleton = Skeleton(3, 10, 8, width=4, cells=3 if name == "darts" else 1)  # darts: a normal cell
    space = get_space(name, skeleton)
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(samples)]
    for cost in (space.params_m, space.flops_m):
        values = [cost(a) for a in archs]
        assert cost(space.largest()) >= max(values), cost.__name__
        assert cost(space.smallest()) <= min(values), cost.__name__
        assert cost(space.smallest()) < cost(space.largest())


# ---- the sandwich step ---------------------------------------------------------------------
class _Recording(nn.Module):
    """The supernet, recording each forward's architecture and counting gradients that reach
    the first (teacher) forward's logits."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.archs, self.teacher_grads = net, [], 0

    def forward(self, x, arch):
        out = self.net(x, arch)
        if not self.archs:
            out.register_hook(lambda g: setattr(self, "teacher_grads", self.teacher_grads + 1))
        self.archs.append(arch)
        return out


def _double_batch(space, seed=0):
    torch.manual_seed(seed)
    net = space.build_supernet().double()
    g = torch.Generator().manual_seed(seed)
    return net, torch.randn(8, 1, 8, 8, generator=g, dtype=torch.float64), torch.arange(8) % 10


@pytest.mark.parametrize("sandwich_rule", [True, False])
def test_step_runs_largest_then_random_then_smallest(sandwich_rule):
    space = get_space("nb201", TINY["nb201"])
    net, images, labels = _double_batch(space)
    method = AlphaNet(space, AlphaNetConfig(sandwich_rule=sandwich_rule), seed=5)
    recording = _Recording(net)
    method.train_step(recording, images, labels, torch.arange(8))
    random = UniformSampler(space, 5).ask(2 if sandwich_rule else 3)
    last = [space.smallest()] if sandwich_rule else []
    assert recording.archs == [space.largest(), *random, *last]
    assert recording.teacher_grads == 1  # only its own cross-entropy: the soft targets are detached


@pytest.mark.parametrize("distillation", ["alpha", "kl"])
def test_step_gradients_are_the_sum_of_each_paths_gradients(distillation):
    space = get_space("nb201", TINY["nb201"])
    net, images, labels = _double_batch(space)
    method = AlphaNet(space, AlphaNetConfig(distillation=distillation), seed=7)
    paths = [space.largest(), *UniformSampler(space, 7).ask(2), space.smallest()]
    loss = method.train_step(net, images, labels, torch.arange(8))
    got = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}

    want: dict[str, torch.Tensor] = {}
    teacher = None
    logged = 0.0
    for arch in paths:
        net.zero_grad(set_to_none=True)
        logits = net(images, arch)
        if teacher is None:
            path_loss = value = F.cross_entropy(logits, labels, label_smoothing=0.1)
            teacher = logits.detach()
        else:
            path_loss, value = method.distill(logits, teacher)
        path_loss.backward()
        logged += value.item()
        for n, p in net.named_parameters():
            if p.grad is not None:
                want[n] = want.get(n, 0) + p.grad
    assert got.keys() == want.keys()
    for n in got:
        assert torch.allclose(got[n], want[n], rtol=1e-10, atol=1e-13), n
    assert loss == pytest.approx(logged, rel=1e-10)


def test_gradients_are_clipped_by_value_not_norm():
    space = get_space("nb201", TINY["nb201"])
    method = AlphaNet(space, seed=0)
    a, b = torch.zeros(3, requires_grad=True), torch.zeros(2, requires_grad=True)
    a.grad, b.grad = torch.tensor([3.0, -0.5, -7.0]), torch.tensor([0.25, 0.0])
    method.clip_gradients([a, b], max_norm=5.0)
    assert a.grad.tolist() == [1.0, -0.5, -1.0] and b.grad.tolist() == [0.25, 0.0]


# ---- training through the loop and exact resume --------------------------------------------
def _fresh(name: str):
    space = get_space(name, TINY[name])
    splits = make_splits(load_data(None), DataConfig(batch_size=64, train_subset=256), 0)
    torch.manual_seed(0)
    return space.build_supernet(), METHODS.get("alphanet")(space, seed=0), splits


def _through_safe_pickle(state: dict) -> dict:
    """A checkpoint as `nas.runs.load_checkpoint` reads it: weights-only unpickling."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("name", sorted(TINY))
def test_trains_and_resumes_bit_identically(name):
    config = TrainConfig(epochs=2, checkpoint_every_steps=2, seed=0)
    net, method, splits = _fresh(name)
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    saved: list[dict] = []
    train(net, method, splits.train, config,
          save_checkpoint=lambda s: saved.append(_through_safe_pickle(s)))
    params = dict(net.named_parameters())
    assert all(torch.isfinite(p).all() for p in params.values())
    assert any(not torch.equal(initial[k], p) for k, p in params.items())
    positions = [(s["epoch"], s["step"]) for s in saved]
    assert (1, 0) in positions and (1, 2) in positions  # an epoch end and a mid-epoch point
    for state in (s for s in saved if (s["epoch"], s["step"]) in ((1, 0), (1, 2))):
        again, method, splits = _fresh(name)
        train(again, method, splits.train, config, resume_from=state)
        for (key, a), b in zip(net.state_dict().items(), again.state_dict().values()):
            assert torch.equal(a, b), (name, key, state["epoch"], state["step"])


def test_one_step_gives_finite_gradients_on_every_space():
    for name in sorted(TINY):
        net, method, splits = _fresh(name)
        images, labels, ids = next(splits.train.epoch(0))
        loss = method.train_step(net, images, labels, ids)
        assert math.isfinite(loss) and loss > 0, name
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads), name
