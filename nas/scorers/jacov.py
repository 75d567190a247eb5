"""Jacobian covariance (`jacov`): how differently the network responds to different inputs.

Mellor et al., "Neural Architecture Search without Training" (v1, 2020), in the form
Abdelfattah et al., ICLR 2021, "Zero-Cost Proxies for Lightweight NAS", evaluate it
(SamsungLabs/zero-cost-nas `foresight/pruners/measures/jacob_cov.py`, `get_batch_jacobian`,
`eval_score`, `compute_jacob_cov`; our own implementation): the input x requires grad,
y = net(x), y.backward(ones_like(y)), so row i of J is d(sum of all logits)/dx_i, flattened to
(B, C*H*W); C = corrcoef(J) (B x B, rows as variables); with its eigenvalues v,
score = -sum(ln(v + 1e-5) + 1 / (v + 1e-5)). Labels are unused. The official code runs it on one
augmented training batch of 64, train mode (BatchNorm on batch statistics), default init.

Degenerate networks. A sample whose Jacobian row is constant (e.g. an output that does not
depend on the input, a cell of `none` edges) makes its corrcoef row NaN; numpy's `eig` then
raises, the official code catches the error and returns NaN (an eigenvalue at or below -1e-5
would give NaN through the log, too). NaN here means "this network failed the proxy"; we return
-inf instead, the project's value for such a score (as naswot's singular kernel): it ranks last,
where NaN is refused by `nas correlate` (`ranking/correlate.py` `rankable_scores`).

Numerics: the eigen-step is done in float64 with `eigvalsh` on the symmetrised matrix (the
official `np.linalg.eig` on a matrix that is symmetric up to rounding gives the same real
eigenvalues, at times with spurious imaginary parts of order 1e-17).
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from nas.errors import ConfigError

_K = 1e-5  # zero-cost-nas `eval_score`: keeps ln and 1/v finite on the near-zero eigenvalues


def input_jacobian(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(B, C*H*W): row i is d(sum of every logit of the batch)/d(image i), on a train-mode copy
    (with BatchNorm in train mode the samples interact, as in the official code)."""
    net = copy.deepcopy(model).train()
    x = images.detach().clone().requires_grad_(True)
    y = net(x)
    if y.requires_grad:
        y.backward(torch.ones_like(y))
    if x.grad is None:  # the output does not depend on the input (a cell of `none` edges)
        return torch.zeros(len(x), x[0].numel(), dtype=x.dtype, device=x.device)
    return x.grad.detach().reshape(len(x), -1)


def jacov_of(jacobian: torch.Tensor) -> float:
    """The score of a Jacobian (B, D); -inf where the official code gives NaN (see above)."""
    if len(jacobian) < 2:
        raise ConfigError(f"jacov correlates the samples of a batch; got {len(jacobian)} image")
    corr = torch.corrcoef(jacobian.double())
    if not torch.isfinite(corr).all():
        return -math.inf  # a constant row: numpy's eig raises, the official code returns NaN
    eigenvalues = torch.linalg.eigvalsh((corr + corr.T) / 2) + _K
    if (eigenvalues <= 0).any():
        return -math.inf  # ln of a non-positive number: NaN in the official code
    score = -float(torch.sum(torch.log(eigenvalues) + 1.0 / eigenvalues))
    return score if math.isfinite(score) else -math.inf


def jacov(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return jacov_of(input_jacobian(model, images))
