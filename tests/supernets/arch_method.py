"""A tiny training method with a learnable architecture parameter and two optimisers.

It exercises the whole training-method contract the way a gradient-based method will: its
weights optimiser is the default SGD, its architecture logits over the first decision have their
own Adam (DARTS's architecture optimiser settings); each step makes two backward passes, the
training loss into the weights and, on a validation batch from the step context, a loss into the
logits alone (`inputs=`). The candidate of the first decision on the validation path is drawn from
softmax(logits) and weighted by p / p.detach() (value 1, gradient into the logits: GDAS's
straight-through trick), so the logits really learn.

Run as `python -m tests.supernets.arch_method COMMAND ...` it is the `nas` command line with this
method registered as `test-arch-logits`.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from search_spaces.base import Sampler
from search_spaces.uniform import UniformSampler
from supernets.loop import Optimisation, TrainConfig
from supernets.methods.base import MethodConfig, TrainingMethod
from supernets.step_context import StepContext


@dataclass(frozen=True)
class ArchLogitsConfig(MethodConfig):
    arch_lr: float = 3e-4  # DARTS `arch_learning_rate`
    arch_weight_decay: float = 1e-3  # DARTS `arch_weight_decay`


class ArchLogits(TrainingMethod):
    name = "test-arch-logits"
    config_class = ArchLogitsConfig

    def __init__(self, space, config=None, seed: int = 0) -> None:
        super().__init__(space, config, seed)
        self.logits = torch.zeros(len(space.decisions[0].choices), requires_grad=True)

    def build_sampler(self) -> Sampler:
        return UniformSampler(self.space, self.seed)

    def configure_optimizers(self, model, config: TrainConfig, budget) -> Optimisation:
        optimisation = super().configure_optimizers(model, config, budget)
        optimisation.optimizers["architecture"] = torch.optim.Adam(
            [self.logits], lr=self.config.arch_lr, betas=(0.5, 0.999),
            weight_decay=self.config.arch_weight_decay)
        return optimisation

    def backward_passes(self) -> int:
        return 2

    def train_step(self, supernet, images, labels, sample_ids,
                   context: StepContext | None = None) -> float:
        context = context or self.context
        (arch,) = self.sampler.ask(1)
        loss = F.cross_entropy(supernet(images, arch), labels)
        context.backward(loss)
        probabilities = self.logits.softmax(0)
        draw = probabilities.detach().double()
        choice = int(self.sampler.rng.choice(len(draw), p=(draw / draw.sum()).numpy()))
        values = list(arch.values)
        values[0] = self.space.decisions[0].choices[choice]
        val_images, val_labels, _ = next(context.validation_batches())
        weight = probabilities[choice] / probabilities[choice].detach()
        val_loss = F.cross_entropy(supernet(val_images, self.space.architecture(values)),
                                   val_labels) * weight
        context.backward(val_loss, inputs=[self.logits])
        return float(loss.detach())

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "logits": self.logits.detach().clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.logits.copy_(state["logits"])


if __name__ == "__main__":
    from nas.cli import main
    from supernets import METHODS

    METHODS.register(ArchLogits)
    sys.exit(main(sys.argv[1:]))
