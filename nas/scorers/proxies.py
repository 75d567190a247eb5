"""Training-free ("zero-cost") proxies: rank architectures without training anything.

Each proxy scores an architecture from its freshly initialised stand-alone model (PyTorch's
default initialisation, seeded) on one batch of the user's training data; higher is better.
They are the baselines a supernet has to beat: a supernet costs minutes to hours, a proxy
seconds. Definitions follow the official code (read at the commits named in the project's
method notes; our own implementation):

- `params`, `flops`: the model's parameters and multiply-accumulates, in millions (NAS-Bench-201
  counting, `search_spaces/cost.py`).
- `synflow` (Tanaka et al., NeurIPS 2020, "Pruning neural networks without any data by
  iteratively conserving synaptic flow"; as Abdelfattah et al., ICLR 2021, "Zero-Cost Proxies
  for Lightweight NAS", SamsungLabs/zero-cost-nas `measures/synflow.py`): BatchNorm removed,
  every weight replaced by its absolute value, float64, input all ones of batch 1;
  R = sum(output); score = sum over Conv2d/Linear weights of |W * dR/dW|. No data are used.
- `grad_norm` (Abdelfattah et al., `measures/grad_norm.py`): cross-entropy on the batch; the
  sum over Conv2d/Linear layers of ||dL/dW||_2.
- `snip` (Lee et al., ICLR 2019; Abdelfattah et al. `measures/snip.py`): sum over Conv2d/Linear
  weights of |W * dL/dW| (the gradient of a ones mask multiplying W).
- `naswot` (Mellor et al., ICML 2021, "Neural Architecture Search without Training";
  BayesWatch/nas-without-training `score_networks.py`, `hooklogdet`): every ReLU module's input
  is binarised per sample, c = 1[x > 0]; K = sum over ReLUs of c c^T + (1-c)(1-c)^T (the number
  of units minus the Hamming distance between two samples' codes); score = log|det K|.

Modes and batches as the official code: `grad_norm` and `snip` on 64 training images with the
training augmentation (zero-cost-nas: the training loader, batch 64), `naswot` on 128 images
without augmentation; all in train mode (BatchNorm on batch statistics; NASWOT's authors call
their eval-mode variant a mistake, nas-without-training issue 3).

The stronger proxies each have a file of their own, with their sources: `jacov` (jacov.py, 64
augmented images), `zico` (zico.py, 2 augmented batches of 64), `meco` (meco.py, one augmented
image) and AZ-NAS's components `az_expressivity`, `az_progressivity`, `az_trainability`
(az_nas.py, Gaussian noise of the images' shape; computed together once per architecture).
AZ-NAS itself, its components and FLOPs by log-rank aggregation, is the combination `az_nas`
(nas.scorers.combined).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import ConfigError
from nas.registry import Registry
from nas.scorers.az_nas import az_nas_components
from nas.scorers.hooks import forward_hooks
from nas.scorers.jacov import jacov
from nas.scorers.meco import meco
from nas.scorers.zico import zico
from search_spaces import Architecture
from search_spaces.cost import count_flops

Score = Callable[[nn.Module, torch.Tensor, torch.Tensor], float]
REDRAW_SEED_OFFSET = 1  # trust's second draw: the next seed's batch and initialisation
ZICO_BATCH = 64  # ZiCo's 2 batches, each of AZ-NAS's NB201 port's 64 images


@dataclass(frozen=True)
class Proxy:
    """A named training-free score and the batch it is computed on."""

    name: str
    score: Score  # (fresh model, images (B, C, H, W), labels (B,)) -> score, higher is better
    batch_size: int  # images the official code scores on (0: the proxy uses no data)
    is_augmented: bool  # drawn with the training augmentation
    component: str | None = None  # `score` returns several values at once; this one's key


def _scored_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@torch.no_grad()
def _sum_over_weights(net: nn.Module,
                      per_layer: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> float:
    """The sum over Conv2d/Linear layers of `per_layer(weight, its gradient)`; layers the
    backward pass did not reach score nothing."""
    return float(sum(per_layer(m.weight, m.weight.grad) for m in _scored_layers(net)
                     if m.weight.grad is not None))


def params(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


def flops(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return count_flops(model, tuple(images.shape[1:])) / 1e6


def _without_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of `model` with every BatchNorm replaced by the identity (zero-cost-nas bn=False)."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, name, nn.Identity())
    return model


def synflow(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    net = _without_batchnorm(model).double().train()
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.abs_()
    net.zero_grad(set_to_none=True)
    ones = torch.ones(1, *images.shape[1:], dtype=torch.float64, device=images.device)
    net(ones).sum().backward()
    return _sum_over_weights(net, lambda w, g: (w * g).abs().sum())


def _loss_gradients(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> nn.Module:
    net = copy.deepcopy(model).train()
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net(images), labels).backward()
    return net


def grad_norm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return _sum_over_weights(_loss_gradients(model, images, labels), lambda w, g: g.norm())


def snip(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return _sum_over_weights(_loss_gradients(model, images, labels),
                             lambda w, g: (w * g).abs().sum())


def activation_kernel(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """NASWOT's K (B, B): for each pair of samples, the ReLU units where both are active or
    both inactive, summed over every ReLU module of `model`."""
    net = copy.deepcopy(model).train()
    kernel = torch.zeros(len(images), len(images), dtype=torch.float64)
    relus = [m for m in net.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ConfigError("naswot scores ReLU activation patterns, but this network has no ReLU "
                          "module; choose another proxy")

    def hook(_module: nn.Module, inputs: tuple, _output: torch.Tensor) -> None:
        units = inputs[0][0].numel()
        # c c^T + (1-c)(1-c)^T = 2 c c^T - s_i - s_j + units, with s the active counts: one
        # product instead of two, exact in float32 while every entry (<= units) is below 2^24.
        dtype = torch.float32 if units < 2 ** 24 else torch.float64
        codes = (inputs[0].detach().flatten(1) > 0).to(dtype)  # (B, units)
        both_active = (codes @ codes.T).double().cpu()
        active = codes.sum(dim=1).double().cpu()
        kernel.add_(2 * both_active - active[:, None] - active[None, :] + codes.shape[1])

    with forward_hooks((m, hook) for m in relus), torch.no_grad():
        net(images)
    return kernel


def naswot(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float(torch.linalg.slogdet(activation_kernel(model, images))[1])


PROXIES: Registry[Proxy] = Registry("proxy")
for _proxy in (Proxy("params", params, 0, False), Proxy("flops", flops, 0, False),
               Proxy("synflow", synflow, 0, False), Proxy("grad_norm", grad_norm, 64, True),
               Proxy("snip", snip, 64, True), Proxy("naswot", naswot, 128, False),
               Proxy("jacov", jacov, 64, True), Proxy("zico", zico, 2 * ZICO_BATCH, True),
               Proxy("meco", meco, 1, True),
               *(Proxy(f"az_{key}", az_nas_components, 0, False, key)
                 for key in ("expressivity", "progressivity", "trainability"))):
    PROXIES.register(_proxy)

# Several components from one computation (AZ-NAS's), kept per architecture so that the parts
# of a combination cost one pass: (function, space, skeleton, arch, seed, image shape) -> values.
_COMPUTED: dict[tuple, dict[str, float]] = {}
_COMPUTED_MAX = 4096


def parse_proxy_names(text: str) -> list[str]:
    """`naswot,synflow` -> their names, each checked against the registry."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError(f"--proxy needs one or more names, comma-separated; choose from: "
                          f"{', '.join(PROXIES.names())}")
    for name in names:
        PROXIES.get(name)
    return names


class ProxyScorer:
    """A `Scorer`: scores architectures of a search problem with one proxy: for each, a fresh stand-alone
    model initialised from torch seed `seed`, on one fixed batch drawn with `seed` (the same
    batch for every architecture, as the official code scores a whole space on one batch)."""

    def __init__(self, problem, name: str, seed: int = 0) -> None:
        self.proxy, self.space, self.seed = PROXIES.get(name), problem.space, seed
        self.problem = problem
        self.column = name
        self.device = problem.device
        source = problem.splits.train if self.proxy.is_augmented else problem.splits.calibration
        self.images, self.labels, _ = source.one_batch(max(1, self.proxy.batch_size), seed)

    def __call__(self, arch) -> float:
        # manual_seed reseeds every device; forking them all leaves the caller's streams as
        # they were.
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
        # A proxy's own random draws (AZ-NAS's noise input and re-initialisation) follow the
        # model's from the same seed, so a score does not depend on what was scored before.
        key = (self.proxy.score, self.space.name, str(self.space.skeleton), str(arch),
               self.seed, tuple(self.images.shape), str(self.device))
        if self.proxy.component is not None and key in _COMPUTED:
            return _COMPUTED[key][self.proxy.component]
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            model = self.space.build_model(arch).to(self.device)
            value = self.proxy.score(model, self.images, self.labels)
        if self.proxy.component is None:
            return value
        if len(_COMPUTED) >= _COMPUTED_MAX:
            _COMPUTED.pop(next(iter(_COMPUTED)))
        _COMPUTED[key] = value
        return value[self.proxy.component]

    def identity(self) -> str:
        return f"proxy:{self.proxy.name} seed {self.seed}"

    def parts(self, arch: Architecture) -> dict[str, float]:
        return {}  # a single scorer

    def redrawn(self) -> ProxyScorer | None:
        """Another seed's batch and initialisation (trust's score noise); None for the counts,
        which no seed moves."""
        if self.proxy.score in (params, flops):
            return None
        return ProxyScorer(self.problem, self.proxy.name, self.seed + REDRAW_SEED_OFFSET)
