"""Gradient-based methods: architecture weights learned jointly with the supernet (DARTS, DrNAS).

DARTS (Liu et al., ICLR 2019; quark0/darts `cnn/architect.py`, `train_search.py`) relaxes each
decision into a softmax-weighted mixture of its candidates (`search_spaces/relaxation.py`) and
alternates two gradient steps on two halves of the training data: the architecture parameters
alpha on a validation batch, the supernet weights w on a training batch. First order treats w as
fixed in the architecture step; second order differentiates through one virtual SGD step
w' = w - xi * grad_w L_train(w, alpha) (xi = the weights' learning rate), with the Hessian-vector
product by finite differences, eps = 0.01 / ||grad_w' L_val|| (`DARTS.unrolled_alpha_gradients`).

DrNAS (Chen et al., ICLR 2021; automl/TangleNAS `optimizers/sampler/drnas.py`) treats the
mixing weights as a Dirichlet(elu(alpha) + 1) random variable and draws them with `rsample`, so
the architecture step differentiates through the draw; every forward pass draws afresh.

How a step meets the contract (`supernets/methods/base.py`): the architecture pass runs on the
supernet itself, not its DDP wrapper, and sends its gradient to alpha alone (`inputs=`); alpha's
gradient is then averaged over processes by `context.all_reduce`. The weights pass runs through
the wrapper with the mixture detached, so alpha is not trained on training data. The loop then
steps both optimisers together (alpha's Adam and the weights' SGD): the weights' gradient is
taken at the step's alpha, before its update, where DARTS's code updates alpha first. The
derived architecture (`derive`) is the space's rule applied to the expected mixing weights
(softmax for DARTS, the Dirichlet mean for DrNAS) and is what `nas search` reports as best.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar, Mapping

import torch
import torch.nn.functional as F

from nas.errors import ConfigError
from search_spaces.base import Architecture, Sampler, SearchSpace, Supernet
from search_spaces.relaxation import Mixture
from search_spaces.uniform import UniformSampler
from supernets.budget import StepBudget
from supernets.loop import Optimisation, sgd_with_schedule
from supernets.methods.base import MethodConfig, TrainingMethod
from supernets.step_context import StepContext
from supernets.train_config import TrainConfig


@dataclass(frozen=True)
class GradientConfig(MethodConfig):
    """Shared settings, from TangleNAS `configs/search/nb201-drnas.config` (the DARTS values
    are the same, quark0/darts `train_search.py`). The weights' learning rate is `--lr`
    (the papers: 0.025, batch 64, 50 epochs for DARTS, 100 for DrNAS); the architecture step's
    validation data is the run's search-validation split (the papers: half the training set)."""

    arch_lr: float = 3e-4  # `arch_learning_rate`
    arch_weight_decay: float = 1e-3  # `arch_weight_decay` (DrNAS's l2 `reg_scale` 1e-3 equals it)
    arch_beta1: float = 0.5  # Adam betas (0.5, 0.999), DARTS `architect.py`
    arch_beta2: float = 0.999
    weight_decay: float = 3e-4  # the weights' SGD (`weight_decay`); momentum is the run's 0.9
    nesterov: bool = False  # `nesterov 0`
    init_scale: float = 1e-3  # alpha = init_scale * randn, DARTS `_initialize_alphas`

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("arch_lr", "init_scale"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("arch_weight_decay", "weight_decay"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("arch_beta1", "arch_beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must lie in [0, 1), got {getattr(self, name)}")


@dataclass(frozen=True)
class DARTSConfig(GradientConfig):
    order: int = 1  # 1: first-order DARTS; 2: second order (`--unrolled`)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.order not in (1, 2):
            raise ConfigError(f"order must be 1 (first-order DARTS) or 2 (second order), got "
                              f"{self.order}")


def dirichlet_draw(alpha: torch.Tensor) -> torch.Tensor:
    """DrNAS's mixing weights: one `rsample` of Dirichlet(elu(alpha) + 1). Drawn on the CPU from
    torch's global generator, which checkpoints hold, so a resumed run draws the same weights on
    any device."""
    concentration = F.elu(alpha.cpu()) + 1
    return torch.distributions.Dirichlet(concentration).rsample().to(alpha.device)


def dirichlet_mean(alpha: torch.Tensor) -> torch.Tensor:
    """The expected DrNAS mixing weights, which its architecture is derived from."""
    concentration = F.elu(alpha) + 1
    return concentration / concentration.sum()


def _gradients(loss: torch.Tensor, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """d loss / d tensors, zeros where a tensor is unused."""
    grads = torch.autograd.grad(loss, tensors, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(tensors, grads)]


def _averaged(grads: list[torch.Tensor], context: StepContext) -> list[torch.Tensor]:
    """The mean of each gradient over processes (in place)."""
    if context.world_size > 1:
        for g in grads:
            context.all_reduce(g).div_(context.world_size)
    return grads


class GradientMethod(TrainingMethod):
    """Architecture parameters alpha, one vector per relaxed decision, and the two-pass step."""

    config_class: ClassVar[type[GradientConfig]] = GradientConfig
    uses_validation_batches = True
    releases_zero_gradients = False  # every weight of the relaxed network gets a gradient

    def __init__(self, space: SearchSpace, config: GradientConfig | None = None,
                 seed: int = 0) -> None:
        super().__init__(space, config, seed)
        self.decisions = self.relaxed_decisions(space)
        generator = torch.Generator().manual_seed(seed)
        self.alphas = [(self.config.init_scale * torch.randn(len(d.choices), generator=generator))
                       .requires_grad_() for d in self.decisions]

    def relaxed_decisions(self, space: SearchSpace):
        """DARTS mixing runs every candidate; a space whose candidates share weights is
        searched by superposing them instead (`--method tangle`)."""
        if space.weight_entanglement == "always":
            raise ConfigError(f"space {space.name}'s candidates share their weights: search it "
                              f"with --method tangle (superposed candidates), not {self.name}")
        return space.relaxed_decisions()

    def build_sampler(self) -> Sampler:
        # No path is drawn in training; a uniform sampler keeps the method's state in the
        # shape every method has (and draws nothing, so it costs nothing).
        return UniformSampler(self.space, self.seed)

    # ---- the mixture ------------------------------------------------------------------------
    def mixing_weights(self, alpha: torch.Tensor) -> torch.Tensor:
        """The weights of one forward pass (DARTS: softmax; DrNAS: a Dirichlet draw)."""
        return F.softmax(alpha, dim=-1)

    def expected_weights(self, alpha: torch.Tensor) -> torch.Tensor:
        """The weights the derived architecture is read from."""
        return F.softmax(alpha, dim=-1)

    def mixture(self) -> Mixture:
        return Mixture(tuple(d.name for d in self.decisions),
                       tuple(self.mixing_weights(a) for a in self.alphas))

    def probabilities(self) -> list[list[float]]:
        with torch.no_grad():
            return [self.expected_weights(a.detach().cpu()).tolist() for a in self.alphas]

    def derive(self) -> Architecture:
        """The architecture the learned weights stand for (the space's rule)."""
        return self.space.derive(self.probabilities())

    # ---- optimisers -------------------------------------------------------------------------
    def configure_optimizers(self, model, config: TrainConfig, budget: StepBudget) -> Optimisation:
        device = next(model.parameters()).device
        self.alphas = [a.detach().to(device).requires_grad_() for a in self.alphas]
        weights_config = replace(config, weight_decay=self.config.weight_decay,
                                 nesterov=self.config.nesterov)
        optimizer, scheduler = sgd_with_schedule(model.parameters(), weights_config, budget)
        architecture = torch.optim.Adam(self.alphas, lr=self.config.arch_lr,
                                        betas=(self.config.arch_beta1, self.config.arch_beta2),
                                        weight_decay=self.config.arch_weight_decay)
        return Optimisation({"weights": optimizer, "architecture": architecture},
                            {"weights": scheduler})

    def backward_passes(self) -> int:
        return 2

    # ---- the step ---------------------------------------------------------------------------
    def train_step(self, supernet: Supernet, images: torch.Tensor, labels: torch.Tensor,
                   sample_ids: torch.Tensor, context: StepContext | None = None) -> torch.Tensor:
        context = context or self.context
        val_images, val_labels, _ = next(context.validation_batches())
        self.architecture_step(val_images, val_labels, images, labels, context)
        for alpha in self.alphas:
            if alpha.grad is not None and context.world_size > 1:
                context.all_reduce(alpha.grad).div_(context.world_size)
        loss = F.cross_entropy(supernet(images, self.mixture().detach()), labels,
                               label_smoothing=self.config.label_smoothing)
        context.backward(loss, inputs=self._parameters)
        return loss.detach()

    def _loss(self, images: torch.Tensor, labels: torch.Tensor, mixture: Mixture) -> torch.Tensor:
        return F.cross_entropy(self.model(images, mixture), labels,
                               label_smoothing=self.config.label_smoothing)

    def architecture_step(self, val_images, val_labels, images, labels,
                          context: StepContext) -> None:
        """First order: grad_alpha L_val(w, alpha), on the supernet itself (module doc)."""
        context.backward(self._loss(val_images, val_labels, self.mixture()), inputs=self.alphas)

    # ---- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "alphas": [a.detach().cpu().clone() for a in self.alphas]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            for alpha, saved in zip(self.alphas, state["alphas"]):
                alpha.copy_(saved)


class DARTS(GradientMethod):
    name = "darts"
    config_class = DARTSConfig

    def architecture_step(self, val_images, val_labels, images, labels,
                          context: StepContext) -> None:
        if self.config.order == 1:
            super().architecture_step(val_images, val_labels, images, labels, context)
            return
        gradients = self.unrolled_alpha_gradients(val_images, val_labels, images, labels,
                                                  context)
        # The one backward pass of the architecture step: alpha.grad = the unrolled gradient.
        surrogate = sum((a * g).sum() for a, g in zip(self.alphas, gradients))
        context.backward(surrogate, inputs=self.alphas)

    def unrolled_alpha_gradients(self, val_images: torch.Tensor, val_labels: torch.Tensor,
                                 images: torch.Tensor, labels: torch.Tensor,
                                 context: StepContext) -> list[torch.Tensor]:
        """Second order: the gradient of L_val with respect to each of `alphas` through one
        virtual weights step (quark0/darts `cnn/architect.py` `_backward_step_unrolled`):

            w' = w - xi * (momentum * buffer + grad_w L_train(w, alpha) + weight_decay * w)
            grad_alpha L_val(w', alpha)
              - xi * (grad_alpha L_train(w+, alpha) - grad_alpha L_train(w-, alpha)) / (2 eps)

        with w+- = w +- eps * grad_w' L_val(w', alpha), eps = 0.01 / ||grad_w' L_val||. The
        passes compute gradients with `torch.autograd.grad` on the supernet itself and
        accumulate nothing; `architecture_step` hands the result to its one backward pass.
        Under torchrun the weight gradients are averaged over processes first, so every
        process takes the same virtual step."""
        weights = [p for p in self._parameters if p.requires_grad]
        group = self.optimizer.param_groups[0]
        xi, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
        original = [w.detach().clone() for w in weights]

        # The mixture is made anew for each pass: each graph is freed after its gradient.
        train_grads = _averaged(
            _gradients(self._loss(images, labels, self.mixture().detach()), weights), context)
        with torch.no_grad():
            for w, g in zip(weights, train_grads):
                buffer = self.optimizer.state.get(w, {}).get("momentum_buffer")
                step = g + decay * w
                if buffer is not None:
                    step = step + momentum * buffer
                w.sub_(xi * step)
        try:
            both = _gradients(self._loss(val_images, val_labels, self.mixture()),
                              [*self.alphas, *weights])
            alpha_grads = both[:len(self.alphas)]
            val_weight_grads = _averaged(both[len(self.alphas):], context)
            norm = torch.sqrt(sum((g * g).sum() for g in val_weight_grads))
            eps = 0.01 / norm.clamp_min(1e-12)
            finite = []
            for sign in (1.0, -1.0):
                with torch.no_grad():
                    for w, w0, v in zip(weights, original, val_weight_grads):
                        w.copy_(w0 + sign * eps * v)
                finite.append(_gradients(self._loss(images, labels, self.mixture()),
                                         list(self.alphas)))
        finally:
            with torch.no_grad():
                for w, w0 in zip(weights, original):
                    w.copy_(w0)
        return [(a - xi * (plus - minus) / (2 * eps)).detach()
                for a, plus, minus in zip(alpha_grads, *finite)]


class DrNAS(GradientMethod):
    """DrNAS with the l2 regulariser of TangleNAS's NB201 config (reg_type l2, reg_scale 1e-3,
    applied as alpha's Adam weight decay); no progressive partial channels (its NB201 runs
    have none)."""

    name = "drnas"

    def mixing_weights(self, alpha: torch.Tensor) -> torch.Tensor:
        return dirichlet_draw(alpha)

    def expected_weights(self, alpha: torch.Tensor) -> torch.Tensor:
        return dirichlet_mean(alpha)
