"""In-place distillation losses: AlphaNet's adaptive alpha-divergence and plain KL.

Notation as AlphaNet (Wang et al., ICML 2021, Sec. 3; official `loss_ops.py`): the teacher
distribution p = softmax(teacher logits) (the largest subnet, detached), the student q =
softmax(student logits), the importance ratio w_i = p_i / q_i. Per sample, summed over classes,

    D_alpha(p || q) = 1 / (alpha (alpha - 1)) * sum_i q_i [ w_i^alpha - 1 ],

with the limits alpha -> 0: KL(q || p) = sum_i q_i (-log w_i) (mode-seeking), and alpha -> 1:
KL(p || q) = sum_i q_i w_i log w_i (mass-covering, the usual KD loss).

Gradient. As the official code, no loss here is backpropagated through D itself: a surrogate
-sum_i q_i rho_i log q_i, with q and rho detached and only log q carrying gradient, has the
gradient dD/dz = -sum_i q_i rho_i d(log q_i)/dz of the unclipped divergence, where
rho = w^alpha / alpha + 1 / (alpha (alpha - 1)) (the constant term adds nothing, since
sum_i q_i d(log q_i) = 0), rho = log w - 1 at alpha -> 0 and rho = w at alpha -> 1.

Clipping (the paper's beta, `iw_clip`): w^alpha is clamped to [0, iw_clip], or w itself in the
alpha -> 0 branch; the alpha -> 1 branch is not clipped (as in `f_divergence`). The clamped
weights enter both the divergence value and rho, so the gradient is the analytic one with
bounded importance weights: a student far from the teacher gets a bounded push.

One deviation: w is formed in log space, exp(log p - log q), rather than as p / q; the values
are the same, but a q that underflows to 0 no longer divides by zero.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# `loss_ops.py` `f_divergence`: |alpha| < 1e-3 and |alpha - 1| < 1e-3 use the KL limits.
LIMIT_TOLERANCE = 1e-3


def _weighted_terms(log_p: torch.Tensor, log_q: torch.Tensor, alpha: float, iw_clip: float,
                    limit_tolerance: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class (q_i f_i, q_i rho_i) from detached log p and log q, where sum_i q_i f_i is
    D_alpha and rho the surrogate's weight (module doc). Products with q are formed where they
    are exact: in the KL(p || q) limit q_i w_i is p_i itself, so a huge ratio cannot overflow."""
    q, log_w = log_q.exp(), log_p - log_q
    if abs(alpha) < limit_tolerance:  # KL(q || p); the ratio itself is clipped
        log_w = log_w.clamp(max=math.log(iw_clip))
        return -q * log_w, q * (log_w - 1.0)
    if abs(alpha - 1.0) < limit_tolerance:  # KL(p || q); unclipped, as the official code
        p = log_p.exp()
        return p * log_w, p
    w_alpha = (alpha * log_w).exp().clamp(0.0, iw_clip)  # an overflow to inf clamps to iw_clip
    base = 1.0 / (alpha * (alpha - 1.0))
    return q * (w_alpha - 1.0) * base, q * (w_alpha / alpha + base)


def alpha_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, alpha: float,
                     iw_clip: float = 1e3, limit_tolerance: float = LIMIT_TOLERANCE
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample (D_alpha(p || q) with clipped weights, detached; gradient surrogate).

    Logits are (B, K); both results are (B,). `iw_clip` defaults to `f_divergence`'s 1e3 (the
    adaptive loss passes its own 5). `limit_tolerance` is how close alpha must be to 0 or 1 to
    use the KL limit; 0 forces the general formula (tests compare the two near the limits).
    """
    log_q = F.log_softmax(student_logits, dim=1)  # (B, K); the only tensor carrying gradient
    log_p = F.log_softmax(teacher_logits.detach(), dim=1)
    q_f, q_rho = _weighted_terms(log_p, log_q.detach(), float(alpha), iw_clip, limit_tolerance)
    divergence = q_f.sum(dim=1)
    surrogate = -(q_rho * log_q).sum(dim=1)
    return divergence.detach(), surrogate


def adaptive_alpha_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                              alpha_min: float = -1.0, alpha_max: float = 1.0,
                              iw_clip: float = 5.0) -> tuple[torch.Tensor, torch.Tensor]:
    """AlphaNet's loss: per sample the larger of D_{alpha_min} and D_{alpha_max}, batch mean.

    Returns (surrogate to backpropagate, detached divergence to log). Per sample the surrogate
    is that of the larger divergence, compared with clipped weights as `AdaptiveLossSoft`
    does (`torch.gt(loss_left, loss_right)`: ties go to alpha_max). The surrogate's value is
    not the divergence, so log the second result. Defaults: `train_alphanet_models.yml`.
    """
    d_min, s_min = alpha_divergence(student_logits, teacher_logits, alpha_min, iw_clip)
    d_max, s_max = alpha_divergence(student_logits, teacher_logits, alpha_max, iw_clip)
    is_min_larger = d_min > d_max  # (B,)
    surrogate = torch.where(is_min_larger, s_min, s_max).mean()
    return surrogate, torch.where(is_min_larger, d_min, d_max).mean()


def kl_distillation(student_logits: torch.Tensor, teacher_logits: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain in-place distillation KL(p || q), temperature 1, batch mean: the paper's baseline.

    `KLLossSoft` computes the soft cross-entropy -sum p log q, which differs from KL(p || q)
    by the teacher's entropy, a constant for the student: same gradient, and the logged
    value reads 0 when the student matches. Returns (loss, detached loss).
    """
    log_p = F.log_softmax(teacher_logits.detach(), dim=1)
    log_q = F.log_softmax(student_logits, dim=1)
    loss = (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()
    return loss, loss.detach()
