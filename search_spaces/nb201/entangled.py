"""The NB201 supernet with `nor_conv_1x1` and `nor_conv_3x3` entangled, for TangleNAS.

TangleNAS (Sukthanker et al., AutoML-Conf 2024; automl/TangleNAS
`search_spaces/NB201/operations_we2.py` `ReLUConvBNMixture`) makes each edge's two convolutions
one weight-entangled operation: one 3x3 kernel whose centre is the 1x1 candidate, one shared
BatchNorm. A path runs its candidate on the slice; the relaxation superposes the candidates'
zero-padded kernels into one kernel and runs ONE convolution, where DARTS mixing runs both convs
and sums their outputs. Since a convolution is linear in its kernel the two agree before the
BatchNorm, and the superposed op keeps one output instead of two.

One deviation: the BatchNorm after the superposed convolution normalises away any common scale
of the kernel, so the entangled pair's total weight w_1x1 + w_3x3 would have no effect on the
edge and get no gradient against skip and pooling. The superposed kernel therefore mixes the
pair's *normalised* weights and the op's output is scaled by their total, so the pair weighs in
the edge sum as the two separate ops do under DARTS mixing.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.nb201.ops import OP_NAMES
from search_spaces.nb201.supernet import NB201Supernet, SupernetCell

if TYPE_CHECKING:
    from search_spaces.nb201.space import NB201Space

CONV_OPS: dict[str, int] = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}  # entangled op -> kernel
MAX_KERNEL = 3


def padded_centre(weight: torch.Tensor, kernel: int) -> torch.Tensor:
    """The centre kernel x kernel of `weight` (..., K, K), zero-padded back to K x K."""
    full = weight.shape[-1]
    start = (full - kernel) // 2
    centre = weight[..., start:start + kernel, start:start + kernel]
    return F.pad(centre, (start, start, start, start)) if kernel != full else centre


class EntangledReLUConvBN(nn.Module):
    """ReLU -> conv -> BN where the kernel sizes in `CONV_OPS` share one 3x3 weight and one BN."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv = nn.Conv2d(channels, channels, MAX_KERNEL, padding=MAX_KERNEL // 2, bias=False)
        self.bn = nn.BatchNorm2d(channels, affine=True, track_running_stats=True)

    def candidate_weight(self, kernel: int) -> torch.Tensor:
        start = (MAX_KERNEL - kernel) // 2
        return self.conv.weight[:, :, start:start + kernel, start:start + kernel]

    def forward(self, x: torch.Tensor, kernel: int) -> torch.Tensor:
        """One candidate: the centre `kernel` x `kernel` of the shared weight, "same" padding."""
        return self.bn(F.conv2d(self.relu(x), self.candidate_weight(kernel), padding=kernel // 2))

    def superposed_weight(self, weights: torch.Tensor) -> torch.Tensor:
        """sum_k weights[k] * zero-padded centre k x k, kernels in `CONV_OPS` order."""
        return sum(w * padded_centre(self.conv.weight, kernel)
                   for w, kernel in zip(weights, CONV_OPS.values()))

    def superposed_conv(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """ONE convolution of relu(x) with the superposed kernel (before the BatchNorm)."""
        return F.conv2d(self.relu(x), self.superposed_weight(weights), padding=MAX_KERNEL // 2)

    def mixed(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """(sum of weights) * BN(superposed conv with the normalised weights): module doc."""
        total = weights.sum()
        return total * self.bn(self.superposed_conv(x, weights / total.clamp_min(1e-12)))


_CONV_INDICES = [OP_NAMES.index(name) for name in CONV_OPS]


class EntangledSupernetCell(SupernetCell):
    """`edges[e]` holds `skip_connect`, `avg_pool_3x3` and one entangled `conv` for both convs;
    a path's cell and the relaxed cell are `SupernetCell`'s, over these ops."""

    def build_edge(self, channels: int) -> nn.ModuleDict:
        return nn.ModuleDict({"skip_connect": nn.Identity(), "conv": EntangledReLUConvBN(channels),
                              "avg_pool_3x3": nn.AvgPool2d(3, stride=1, padding=1,
                                                           count_include_pad=False)})

    def run_op(self, e: int, name: str, x: torch.Tensor) -> torch.Tensor:
        if name in CONV_OPS:
            return self.edges[e]["conv"](x, CONV_OPS[name])
        return self.edges[e][name](x)

    def mixed_edge(self, e: int, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        edge = self.edges[e]
        skip, pool = OP_NAMES.index("skip_connect"), OP_NAMES.index("avg_pool_3x3")
        return (weights[skip] * x + weights[pool] * edge["avg_pool_3x3"](x)
                + edge["conv"].mixed(x, weights[_CONV_INDICES]))


class EntangledNB201Supernet(NB201Supernet):
    """NB201's supernet with `EntangledSupernetCell`s; a path's weights are slices of it."""

    def __init__(self, space: "NB201Space") -> None:
        super().__init__(space, cell_class=EntangledSupernetCell)

    def subnet_state_dict(self, arch, model: nn.Module) -> dict[str, torch.Tensor]:
        """The standalone model's `edges.<e>.nor_conv_kxk.{conv,bn}.*` come from the edge's
        shared `conv` module (the kernel's centre slice); every other key copies as it is."""
        self.space.check(arch)
        own = self.state_dict()
        result = {}
        for key, target in model.state_dict().items():
            source, kernel = key, None
            for name, size in CONV_OPS.items():
                if f".{name}." in key:
                    source, kernel = key.replace(f".{name}.", ".conv."), size
            value = own[source] if source in own else self.non_affine_default(source)
            if value is None:
                raise KeyError(f"supernet has no weight {source!r} for {key!r}")
            if kernel is not None and source.endswith(".conv.weight"):
                start = (MAX_KERNEL - kernel) // 2
                value = value[..., start:start + kernel, start:start + kernel]
            if value.shape != target.shape:
                raise KeyError(f"supernet weight {source!r} {tuple(value.shape)} does not fit "
                               f"{key!r} {tuple(target.shape)}")
            result[key] = value.detach().clone()
        return result
