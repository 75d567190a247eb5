"""TangleNAS: gradient-based search in weight-entangled spaces (Sukthanker et al., AutoML-Conf 2024).

The candidates of an entangled decision share the largest candidate's weights, and the relaxed
network superposes them: the mixing weights combine the zero-padded candidate kernels (and
channel-masked weights) into ONE operation, so its memory is the largest candidate's rather
than the sum of all candidates' (automl/TangleNAS `search_spaces/NB201/operations_we2.py`
`ReLUConvBNMixture`, `search_spaces/MobileNetV3/modules/dynamic_op.py`). The supernet is the
space's entangled one (`SearchSpace.build_entangled_supernet`: NB201 with each edge's 1x1 conv
the centre of its 3x3; mobilenet's elastic blocks, mixed over kernel, expand ratio and depth).

The architecture optimiser is DrNAS by default, as TangleNAS's NB201 config
(`configs/search/nb201-drnas.config`: 100 epochs, SGD lr 0.025, wd 3e-4, arch lr 3e-4, arch
wd 1e-3, batch 64, train_portion 0.5); `optimizer=darts` mixes with a softmax (first order).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from nas.errors import ConfigError
from search_spaces.base import SearchSpace, Supernet
from supernets.methods.gradient import (GradientConfig, GradientMethod, dirichlet_draw,
                                        dirichlet_mean)


@dataclass(frozen=True)
class TangleConfig(GradientConfig):
    optimizer: str = "drnas"  # TangleNAS's NB201 runs: DrNAS; "darts": softmax mixing

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.optimizer not in ("drnas", "darts"):
            raise ConfigError(f"optimizer must be drnas or darts, got {self.optimizer!r}")


class TangleNAS(GradientMethod):
    name = "tangle"
    config_class = TangleConfig

    def relaxed_decisions(self, space: SearchSpace):
        if space.weight_entanglement == "none":
            raise ConfigError(f"space {space.name} has no weight-entangled decisions for "
                              f"--method tangle; search it with --method darts or drnas")
        return space.relaxed_decisions()

    def make_supernet(self) -> Supernet:
        return self.space.build_entangled_supernet()

    def mixing_weights(self, alpha: torch.Tensor) -> torch.Tensor:
        if self.config.optimizer == "drnas":
            return dirichlet_draw(alpha)
        return super().mixing_weights(alpha)

    def expected_weights(self, alpha: torch.Tensor) -> torch.Tensor:
        if self.config.optimizer == "drnas":
            return dirichlet_mean(alpha)
        return super().expected_weights(alpha)
