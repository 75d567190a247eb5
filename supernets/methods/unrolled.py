"""Second-order DARTS: alpha's gradient through one virtual weights step (Liu et al., ICLR 2019).

quark0/darts `cnn/architect.py` `_backward_step_unrolled`: with xi the weights' learning rate,
w' = w - xi * (momentum * buffer + grad_w L_train(w, alpha) + weight_decay * w), then

    grad_alpha L_val(w', alpha) - xi * (grad_alpha L_train(w+, alpha) - grad_alpha L_train(w-, alpha)) / (2 eps)

with w+- = w +- eps * grad_w' L_val(w', alpha) and eps = 0.01 / ||grad_w' L_val||. These
passes compute gradients with `torch.autograd.grad` on the supernet itself and accumulate
nothing; the caller hands the result to the step's one architecture backward pass. Under
torchrun the weight gradients are averaged over processes first, so every process takes the
same virtual step.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from supernets.step_context import StepContext

if TYPE_CHECKING:
    from supernets.methods.gradient import GradientMethod


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


def unrolled_alpha_gradients(method: "GradientMethod", val_images: torch.Tensor,
                             val_labels: torch.Tensor, images: torch.Tensor,
                             labels: torch.Tensor, context: StepContext) -> list[torch.Tensor]:
    """The second-order gradient of L_val with respect to each of `method.alphas`."""
    weights = [p for p in method._parameters if p.requires_grad]
    group = method.optimizer.param_groups[0]
    xi, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
    original = [w.detach().clone() for w in weights]

    # The mixture is made anew for each pass: each graph is freed after its gradient.
    train_grads = _averaged(
        _gradients(method._loss(images, labels, method.mixture().detach()), weights), context)
    with torch.no_grad():
        for w, g in zip(weights, train_grads):
            buffer = method.optimizer.state.get(w, {}).get("momentum_buffer")
            step = g + decay * w
            if buffer is not None:
                step = step + momentum * buffer
            w.sub_(xi * step)
    try:
        both = _gradients(method._loss(val_images, val_labels, method.mixture()),
                          [*method.alphas, *weights])
        alpha_grads = both[:len(method.alphas)]
        val_weight_grads = _averaged(both[len(method.alphas):], context)
        norm = torch.sqrt(sum((g * g).sum() for g in val_weight_grads))
        eps = 0.01 / norm.clamp_min(1e-12)
        finite = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for w, w0, v in zip(weights, original, val_weight_grads):
                    w.copy_(w0 + sign * eps * v)
            finite.append(_gradients(method._loss(images, labels, method.mixture()),
                                     list(method.alphas)))
    finally:
        with torch.no_grad():
            for w, w0 in zip(weights, original):
                w.copy_(w0)
    return [(a - xi * (plus - minus) / (2 * eps)).detach()
            for a, plus, minus in zip(alpha_grads, *finite)]
