"""Elastic (weight-entangled) ops of the mobilenet supernet, after OFA's `dynamic_op.py`.

One set of maximal weights serves every choice by slicing (Cai et al., ICLR 2020; mit-han-lab/
once-for-all `ofa/imagenet_classification/elastic_nn/modules/dynamic_op.py`):
- expand ratio e: the FIRST `mid_channels(in, e)` channels of the expand conv, the depthwise conv,
  their BatchNorms, the squeeze-excite and the project conv's input;
- kernel k: the centre k x k of the 7 x 7 depthwise weight. OFA passes that centre through learned
  k^2 x k^2 "kernel transform" matrices (`KERNEL_TRANSFORM_MODE = 1`); we use the plain centre crop
  of BigNAS / AttentiveNAS instead, because the issue asks for the centre and it keeps a subnet's
  weights a pure slice of the supernet's (nothing to fold in on export).
The architecture is an argument of `forward`, never module state (unlike OFA's `active_*`).

TangleNAS superposition (Sukthanker et al., AutoML-Conf 2024; automl/TangleNAS
`search_spaces/MobileNetV3/modules/dynamic_op.py` `get_weights_mixture`): `mixed` runs the
continuous relaxation over kernel and expand ratio as ONE op per layer at the largest size, on a
weight that superposes the candidates' zero-padded weights. With expand weights a_e, kernel
weights b_k and the 0/1 masks m_e (first mid(e) of max_mid channels) and M_k (centre k x k of
7 x 7), TangleNAS's sum over the product sum_{e,k} a_e b_k (m_e x M_k) factorises into
c = sum_e a_e m_e (`channel_scale`) times M = sum_k b_k M_k (`kernel_mask`). Each layer is linear
in its weight, so each superposed layer equals the weighted sum of its candidates' outputs,
zero-padded to max_mid channels, and keeps one output of the largest candidate's size.
BatchNorm is superposed too (TangleNAS `DynamicBatchNorm2dMixture`): BN acts per channel, so the
weighted sum of the candidates' zero-padded BN outputs is one full-width BN whose affine weight
and bias are scaled by c (`DynamicBatchNorm2d.mixed`). A full-width BN with plain affine would
undo the mask in training: it normalises channel j of c_j * z back to z, and a masked (all-zero)
channel would come out as its bias.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

SE_REDUCTION = 4  # OFA `SEModule.REDUCTION`
CHANNEL_DIVISOR = 8  # OFA `MyNetwork.CHANNEL_DIVISIBLE`


def make_divisible(v: float, divisor: int = CHANNEL_DIVISOR, min_val: int | None = None) -> int:
    """Round `v` to a multiple of `divisor`, never below `min_val` nor more than 10 % down.

    The TF-slim MobileNet rule, as in OFA `ofa/utils/pytorch_modules.py` `make_divisible`.
    """
    min_val = divisor if min_val is None else min_val
    new_v = max(min_val, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def mid_channels(in_channels: int, expand: int) -> int:
    """Hidden width of an MBConv block (OFA `DynamicMBConvLayer.active_middle_channel`)."""
    return make_divisible(round(in_channels * expand))


def se_channels(mid: int) -> int:
    """Squeeze width of the SE module on `mid` channels (OFA `DynamicSE.forward`)."""
    return make_divisible(mid // SE_REDUCTION)


def build_activation(name: str) -> nn.Module:
    """OFA's "relu" / "h_swish"; `nn.Hardswish` is OFA's `Hswish`, x * relu6(x + 3) / 6."""
    if name == "relu":
        return nn.ReLU()
    if name == "h_swish":
        return nn.Hardswish()
    raise ValueError(f"unknown activation {name!r}; choose one of: relu, h_swish")


def _head(t: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """The first n entries along dim 0; the tensor itself when it has exactly n (no view, no
    SliceBackward), so the largest architecture runs on the parameters as a plain net would."""
    if t is None or t.shape[0] == n:
        return t
    return t[:n]


def width_masks(widths: Sequence[int], max_width: int, like: torch.Tensor) -> torch.Tensor:
    """(len(widths), max_width): row i is 1 on the first widths[i] entries, 0 after."""
    positions = torch.arange(max_width, device=like.device)
    limits = torch.tensor(list(widths), device=like.device)
    return (positions[None, :] < limits[:, None]).to(like.dtype)


def channel_scale(widths: Sequence[int], weights: torch.Tensor, max_width: int) -> torch.Tensor:
    """c = sum_i weights[i] * m_i, the mask m_i of the first widths[i] channels: (max_width,)."""
    return weights @ width_masks(widths, max_width, weights)


def kernel_mask(kernels: Sequence[int], weights: torch.Tensor, max_kernel: int) -> torch.Tensor:
    """M = sum_k weights[k] * (centre k x k of a max_kernel x max_kernel square): (K, K).
    W * M is sum_k weights[k] * zero-padded centre k x k of W (TangleNAS `get_active_filter`)."""
    # centre k x k <=> distance from the middle at most k // 2 along both axes
    distance = (torch.arange(max_kernel, device=weights.device) - max_kernel // 2).abs()
    reach = torch.maximum(distance[:, None], distance[None, :])  # (K, K)
    halves = torch.tensor([k // 2 for k in kernels], device=weights.device)
    masks = (reach[None] <= halves[:, None, None]).to(weights.dtype)  # (len(kernels), K, K)
    return torch.einsum("k,kij->ij", weights, masks)


class DynamicBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the first C channels of a maximal `nn.BatchNorm2d`, C = the input's channels.

    Weight, bias and running statistics are sliced; the slices are views, so `F.batch_norm`
    updates the first C entries of the running buffers in place. The update rule is
    `nn.BatchNorm2d.forward`'s, line for line (exponential average with `momentum`, cumulative
    average 1/num_batches_tracked when momentum is None, which the platform's BN recalibration
    uses), with one `num_batches_tracked` shared by all widths as in OFA `DynamicBatchNorm2d`.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 (nn.BatchNorm2d's name)
        channels = input.shape[1]
        if channels == self.num_features:
            return super().forward(input)
        return self._batch_norm(input, _head(self.weight, channels), _head(self.bias, channels))

    def mixed(self, input: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:  # noqa: A002
        """The superposed BN at full width: affine weight and bias times the channel scale c
        (module doc), i.e. sum_e a_e * zero-padded BN of the first mid(e) channels. Running
        statistics update as in `forward`, over all channels (TangleNAS does the same)."""
        return self._batch_norm(input, self.weight * scale, self.bias * scale)

    def _batch_norm(self, input: torch.Tensor, weight: torch.Tensor | None,  # noqa: A002
                    bias: torch.Tensor | None) -> torch.Tensor:
        channels = input.shape[1]
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        if self.training:
            use_batch_stats = True
        else:
            use_batch_stats = self.running_mean is None and self.running_var is None
        pass_buffers = not self.training or self.track_running_stats
        return F.batch_norm(
            input,
            _head(self.running_mean, channels) if pass_buffers else None,
            _head(self.running_var, channels) if pass_buffers else None,
            weight,
            bias,
            use_batch_stats,
            factor,
            self.eps,
        )


class ElasticSqueezeExcite(nn.Module):
    """OFA `DynamicSE`: mean-pool, 1x1 reduce (bias) + ReLU, 1x1 expand (bias) + h-sigmoid, gate.

    On `mid` channels the reduce width is `se_channels(mid)`; both convs' weights and biases are
    their leading slices. Module names match the standalone `SqueezeExcite`.
    """

    def __init__(self, max_channels: int) -> None:
        super().__init__()
        squeeze = se_channels(max_channels)
        self.reduce = nn.Conv2d(max_channels, squeeze, 1, bias=True)
        self.expand = nn.Conv2d(squeeze, max_channels, 1, bias=True)

    def forward(self, x: torch.Tensor, squeeze: int) -> torch.Tensor:
        mid = x.shape[1]
        s = x.mean((2, 3), keepdim=True)  # (B, mid, 1, 1)
        reduce_w = _head(self.reduce.weight, squeeze)
        if reduce_w.shape[1] != mid:
            reduce_w = reduce_w[:, :mid]
        s = F.relu(F.conv2d(s, reduce_w, _head(self.reduce.bias, squeeze)))
        expand_w = _head(self.expand.weight, mid)
        if expand_w.shape[1] != squeeze:
            expand_w = expand_w[:, :squeeze]
        s = F.hardsigmoid(F.conv2d(s, expand_w, _head(self.expand.bias, mid)))
        return x * s

    def superposed_params(self, widths: Sequence[tuple[int, int]], weights: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reduce weight and bias, expand weight and bias, each sum_e weights[e] * the candidate's
        slice zero-padded to full size; `widths[e]` is candidate e's (mid, squeeze)."""
        mid_masks = width_masks([m for m, _ in widths], self.reduce.in_channels, weights)
        squeeze_masks = width_masks([q for _, q in widths], self.reduce.out_channels, weights)
        block = torch.einsum("e,eq,em->qm", weights, squeeze_masks, mid_masks)  # (squeeze, mid)
        return (self.reduce.weight * block[:, :, None, None],
                self.reduce.bias * (weights @ squeeze_masks),
                self.expand.weight * block.t()[:, :, None, None],
                self.expand.bias * (weights @ mid_masks))

    def mixed(self, x: torch.Tensor, widths: Sequence[tuple[int, int]],
              weights: torch.Tensor) -> torch.Tensor:
        """`forward` at full width on the superposed parameters (`superposed_params`)."""
        reduce_w, reduce_b, expand_w, expand_b = self.superposed_params(widths, weights)
        s = x.mean((2, 3), keepdim=True)  # (B, max_mid, 1, 1)
        s = F.hardsigmoid(F.conv2d(F.relu(F.conv2d(s, reduce_w, reduce_b)), expand_w, expand_b))
        return x * s


class SuperposedWeights(NamedTuple):
    """One block's superposed conv weights (module doc), and the channel scale c they share."""

    scale: torch.Tensor  # (max_mid,) c = sum_e a_e m_e
    expand: torch.Tensor  # (max_mid, in, 1, 1) output channels scaled by c
    depthwise: torch.Tensor  # (max_mid, 1, K, K) channels scaled by c, kernel masked by M
    project: torch.Tensor  # (out, max_mid, 1, 1) input channels scaled by c


class ElasticMBConv(nn.Module):
    """An inverted-residual block at its largest (kernel 7, widest expand) whose forward runs any
    (kernel, expand) choice on slices of those weights.

    Parameter names equal the standalone `MBConv`'s (expand, expand_bn, depthwise, depthwise_bn,
    se.reduce, se.expand, project, project_bn) so `Supernet.subnet_state_dict` slices key by key.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, activation: str,
                 use_se: bool, kernels: tuple[int, ...], expands: tuple[int, ...]) -> None:
        super().__init__()
        self.kernels, self.expands = tuple(kernels), tuple(expands)
        self.max_kernel = max(kernels)
        self.stride = stride
        self.is_residual = stride == 1 and in_channels == out_channels
        # expand ratio -> (hidden width, SE squeeze width), computed once, not per forward.
        self.widths = {e: (mid_channels(in_channels, e), se_channels(mid_channels(in_channels, e)))
                       for e in expands}
        self.max_mid = max_mid = max(mid for mid, _ in self.widths.values())
        self.expand = nn.Conv2d(in_channels, max_mid, 1, bias=False)
        self.expand_bn = DynamicBatchNorm2d(max_mid)
        self.depthwise = nn.Conv2d(max_mid, max_mid, self.max_kernel, stride,
                                   self.max_kernel // 2, groups=max_mid, bias=False)
        self.depthwise_bn = DynamicBatchNorm2d(max_mid)
        self.se = ElasticSqueezeExcite(max_mid) if use_se else None
        self.project = nn.Conv2d(max_mid, out_channels, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(out_channels)  # output width is not elastic
        self.act = build_activation(activation)

    def _depthwise_weight(self, mid: int, kernel: int) -> torch.Tensor:
        weight = _head(self.depthwise.weight, mid)  # (mid, 1, K, K)
        if kernel != self.max_kernel:
            start = (self.max_kernel - kernel) // 2  # centre crop (OFA `sub_filter_start_end`)
            weight = weight[:, :, start:start + kernel, start:start + kernel]
        return weight

    def forward(self, x: torch.Tensor, kernel: int, expand: int) -> torch.Tensor:
        mid, squeeze = self.widths[expand]
        y = F.conv2d(x, _head(self.expand.weight, mid))
        y = self.act(self.expand_bn(y))
        y = F.conv2d(y, self._depthwise_weight(mid, kernel), None, self.stride, kernel // 2, 1, mid)
        y = self.act(self.depthwise_bn(y))
        if self.se is not None:
            y = self.se(y, squeeze)
        project_w = self.project.weight
        if project_w.shape[1] != mid:
            project_w = project_w[:, :mid]
        y = self.project_bn(F.conv2d(y, project_w))
        return y + x if self.is_residual else y

    # ---- TangleNAS superposition (module doc) ----------------------------------------------
    def superposed_weights(self, kernel_weights: torch.Tensor,
                           expand_weights: torch.Tensor) -> SuperposedWeights:
        """The conv weights of `mixed`: `kernel_weights` over `self.kernels`, `expand_weights`
        over `self.expands` (TangleNAS `get_weights_mixture` over expand x kernel)."""
        scale = channel_scale([self.widths[e][0] for e in self.expands], expand_weights,
                              self.max_mid)
        out_scale = scale[:, None, None, None]
        mask = kernel_mask(self.kernels, kernel_weights, self.max_kernel)  # (K, K)
        return SuperposedWeights(scale, self.expand.weight * out_scale,
                                 self.depthwise.weight * out_scale * mask,
                                 self.project.weight * scale[None, :, None, None])

    def mixed(self, x: torch.Tensor, kernel_weights: torch.Tensor,
              expand_weights: torch.Tensor) -> torch.Tensor:
        """The relaxed block: every layer one op at the largest size on superposed weights.

        Each conv and BN equals the weighted sum of its candidates' zero-padded outputs; the
        block as a whole does not equal the weighted sum of candidate blocks (the activations
        are not linear), as in TangleNAS. With one-hot weights it is `forward` of that choice,
        up to float summation order, in train and eval mode alike; only the running statistics
        of channels beyond the choice's width then move (towards those of all-zero inputs)."""
        w = self.superposed_weights(kernel_weights, expand_weights)
        y = self.act(self.expand_bn.mixed(F.conv2d(x, w.expand), w.scale))  # (B, max_mid, H, W)
        y = F.conv2d(y, w.depthwise, None, self.stride, self.max_kernel // 2, 1, self.max_mid)
        y = self.act(self.depthwise_bn.mixed(y, w.scale))
        if self.se is not None:
            y = self.se.mixed(y, [self.widths[e] for e in self.expands], expand_weights)
        y = self.project_bn(F.conv2d(y, w.project))
        return y + x if self.is_residual else y
