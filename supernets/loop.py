"""The one training loop. Supernet methods and stand-alone training both run through `train`.

It owns what every method shares: the order of a step (zero gradients, the method's step,
clipping, every optimiser's and schedule's step), the NaN guard, the progress bar, TensorBoard
scalars and checkpoints. What is optimised, and how, is the method's: it builds its optimisers
(`configure_optimizers`), runs its passes through the `StepContext` handed to `train_step`, and
may reweight the data (`data_distribution`), clip differently (`clip_gradients`) and act
between epochs. `supernets/methods/base.py` states the contract for training methods.
"""
from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

import torch
from torch import nn

from nas.errors import CheckpointError, ConfigError
from supernets.budget import StepBudget, check_warmup
from supernets.evaluation import ScoringData, accuracy
from supernets.precision import Precision
from supernets.loss_log import LOG_EVERY_STEPS, LossLog
from supernets.progress import Progress
from supernets.step_context import Batches, StepContext
from supernets.train_config import TrainConfig, kept_steps


@dataclass
class Optimisation:
    """The optimisers and learning-rate schedules a method configured, by name.

    "weights" is the supernet's (or model's) weight optimiser; a method with architecture
    parameters adds its own, e.g. "architecture". The loop zeroes, steps and checkpoints all of
    them, in this order.
    """

    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = field(default_factory=dict)

    @property
    def weights(self) -> torch.optim.Optimizer:
        return self.optimizers["weights"]

    def zero_grad(self) -> None:
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)

    def step(self, precision: Precision | None = None) -> None:
        (precision or Precision()).step(self.optimizers.values())
        for scheduler in self.schedulers.values():
            scheduler.step()

    def learning_rate(self) -> float:
        return self.weights.param_groups[0]["lr"]

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "optimizers" not in state:  # checkpoints written before methods owned optimisers
            state = {"optimizers": {"weights": state["optimizer"]},
                     "schedulers": {"weights": state["scheduler"]}}
        for kind, own in (("optimizers", self.optimizers), ("schedulers", self.schedulers)):
            if set(state[kind]) != set(own):
                raise CheckpointError(f"the checkpoint holds {kind} {sorted(state[kind])}, this "
                                      f"method builds {sorted(own)}; resume with the same method")
            for name, item in own.items():
                item.load_state_dict(state[kind][name])


def _schedule(kind: str, budget: StepBudget, warmup_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        total_steps = budget.total  # read at each step: a time budget fixes it early in the run
        progress = min((step - warmup_steps) / max(1, total_steps - warmup_steps), 1.0)
        if kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if kind == "linear":
            return 1.0 - progress
        return 1.0

    return factor


def sgd_with_schedule(parameters: Iterable[torch.Tensor], config: TrainConfig,
                      budget: StepBudget
                      ) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.LambdaLR]:
    """SGD with the config's momentum, Nesterov and weight decay, and its per-step schedule
    over the run's budget."""
    optimizer = torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                                nesterov=config.nesterov, weight_decay=config.weight_decay)
    schedule = _schedule(config.lr_schedule, budget,
                         config.warmup_epochs * budget.steps_per_epoch)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


class StepMethod:
    """What the loop asks of whatever it trains with, and the defaults of the optional parts.

    Subclassed by `supernets.methods.base.TrainingMethod` and `nas.training.standalone.StandaloneStep`.
    Order, per run: `configure_optimizers(model, config, budget)`, then any resumed
    state is loaded, then `setup(model, optimizer, batches, context)` once; per epoch
    `on_epoch_start(epoch, epochs)` (idempotent: it runs again for the epoch a resumed run
    continues), `data_distribution()`, then per batch `train_step` (forward, and exactly
    `backward_passes()` calls of `context.backward`) and `clip_gradients`, and finally
    `on_epoch_end(epoch)`. `score` measures a trained model the way the method means it.
    """

    def configure_optimizers(self, model: nn.Module, config: TrainConfig,
                             budget: StepBudget) -> Optimisation:
        """Default: SGD over the model's parameters with the config's schedule; `budget.total`
        is the run's number of steps (read it when stepping: a time budget fixes it early)."""
        optimizer, scheduler = sgd_with_schedule(model.parameters(), config, budget)
        return Optimisation({"weights": optimizer}, {"weights": scheduler})

    def setup(self, model: nn.Module, optimizer: torch.optim.Optimizer | None, batches: Batches,
              context: StepContext | None = None) -> None:
        """Default: nothing to hold on to. `optimizer` is the weights' optimiser."""

    def backward_passes(self) -> int:
        """How many times a step calls `context.backward`."""
        return 1

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        """Default: nothing scheduled."""

    def data_distribution(self) -> np.ndarray | None:
        """Probabilities over `batches.indices` to draw this epoch's images from, with
        replacement; None (default) is a plain shuffle, each image once."""
        return None

    def train_step(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                   sample_ids: torch.Tensor, context: StepContext | None = None
                   ) -> torch.Tensor | float:
        """Forward and backward passes; returns the loss to log (a detached tensor on the
        device, read every `LOG_EVERY_STEPS` steps)."""
        raise NotImplementedError

    def clip_gradients(self, parameters: Sequence[torch.Tensor], max_norm: float) -> None:
        """Default: clip the global gradient norm (DARTS, SPOS-on-NB201, PA&DA: 5)."""
        if max_norm > 0:
            nn.utils.clip_grad_norm_([p for p in parameters if p.grad is not None], max_norm)

    def on_epoch_end(self, epoch: int) -> None:
        """Default: nothing updated."""

    def score(self, model: nn.Module, arch: Any, data: ScoringData) -> float:
        """Default, for a plain model: top-1 accuracy (%) on `data.evaluation` in eval mode."""
        return accuracy(model, model, data.evaluation.epoch(0))

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Default: stateless."""


def _structure(model: nn.Module) -> list[Any]:
    """What the model's modules keep beside tensors (a split supernet's regions)."""
    return [m.get_extra_state() for m in model.modules()
            if type(m).get_extra_state is not nn.Module.get_extra_state]


def train(model: nn.Module, method: StepMethod, batches: Batches, config: TrainConfig, *,
          validation: Batches | None = None, context: StepContext | None = None,
          resume_from: Mapping[str, Any] | None = None,
          save_checkpoint: Callable[[dict[str, Any]], None] | None = None,
          keep_checkpoint: Callable[[dict[str, Any]], None] | None = None,
          log_scalar: Callable[[str, float, int], None] | None = None,
          description: str = "train") -> None:
    """Train `model` with `method` for the config's budget, continuing from `resume_from`.

    `save_checkpoint` receives, every `config.checkpoint_every_steps` steps, at the end of
    every epoch and at the end of the run, everything needed to resume: model, every optimiser
    and schedule, method state, the context's position, torch's RNG state, the position (epoch,
    steps done in it), the run's total steps and training time so far, and whether it is
    finished. `keep_checkpoint` receives the same at the steps `config.keep_checkpoints` names.
    An epoch's batches are a function of (seed, epoch), so a resumed run replays the steps
    already done of its epoch without training on them (which also replays their augmentation
    draws) and ends bit-identical on CPU to a run that was never interrupted. `validation`
    feeds `context.validation_batches()`; `context` defaults to one process (a
    `supernets.ddp.DistributedContext` trains on several: only its main rank writes).
    """
    steps_per_epoch = len(batches)
    if steps_per_epoch == 0:
        raise ConfigError("the training set is smaller than one batch; lower --batch-size")
    context = context if context is not None else StepContext(validation)
    device = next(model.parameters()).device
    # A run continues in the precision it began with (a checkpoint from before precisions
    # were recorded trained in fp32), whatever "auto" means on the machine it resumes on.
    began = (resume_from.get("precision", {"name": "fp32"})["name"]
             if resume_from is not None else config.precision)
    context.precision = Precision(began, str(device))
    channels_last = (config.channels_last if config.channels_last is not None
                     else device.type == "cuda")
    if channels_last:
        model.to(memory_format=torch.channels_last)  # before any optimiser holds its tensors
    if resume_from is not None and "torch_rng" not in resume_from:
        model.load_state_dict(resume_from["model"])  # an untrained run's weights, saved alone
        resume_from = None
    resumed = resume_from or {}
    budget = StepBudget(steps_per_epoch, config.epochs, config.steps, config.time_budget_s,
                        resumed.get("total_steps"))
    check_warmup(config, steps_per_epoch)
    optimisation = method.configure_optimizers(model, config, budget)
    start_epoch, start_step = 0, 0
    elapsed_s = float(resumed.get("elapsed_s", 0.0))
    if resume_from is not None:
        trained_by = int(resume_from.get("world_size", 1))
        if trained_by != context.world_size:
            raise CheckpointError(f"the checkpoint was trained by {trained_by} process(es) and "
                                  f"this run has {context.world_size}: its steps count other "
                                  f"batches; resume with torchrun --nproc-per-node {trained_by}"
                                  if trained_by > 1 else
                                  f"the checkpoint was trained by 1 process and this run has "
                                  f"{context.world_size}; resume it without torchrun")
        model.load_state_dict(resume_from["model"])
        optimisation.load_state_dict(resume_from)
        method.load_state_dict(resume_from["method"])
        context.load_state_dict(resume_from.get("context", {}))
        context.precision.load_state_dict(resume_from.get("precision", {}))
        torch.set_rng_state(resume_from["torch_rng"])
        start_epoch, start_step = int(resume_from["epoch"]), int(resume_from.get("step", 0))
    else:
        torch.manual_seed(config.seed)
    method.setup(model, optimisation.weights, batches, context)
    model.train()
    trained = context.wrap(model)  # what the step's passes run through
    # Walking a supernet's module tree costs ~10 ms a step (thousands of candidate tensors);
    # list the parameters once and clip only those the step touched.
    parameters = list(model.parameters())
    passes = method.backward_passes()
    context.passes = passes
    # A step written without a `context` parameter can run no backward pass (the count check
    # below says so); it is called without one.
    step_kwargs = ({"context": context}
                   if "context" in inspect.signature(method.train_step).parameters else {})
    last_saved = f"epoch {start_epoch} step {start_step}"
    steps_done = start_epoch * steps_per_epoch + start_step
    first_step, first_elapsed_s = steps_done, elapsed_s  # this process's rate, for a time budget
    # The snapshot steps, once the budget's total is known (a time budget learns it early).
    keep = kept_steps(config.keep_checkpoints, budget.total) if budget.is_resolved else set()
    losses = LossLog(context)

    def log_loss() -> None:
        mean = losses.read(last_saved)
        if mean is None:
            return
        if log_scalar is not None and context.is_main:
            log_scalar("train/loss", mean, steps_done - 1)
        progress.set_postfix(epoch=epoch + 1, loss=f"{mean:.3f}")

    def state(epoch: int, step: int) -> dict[str, Any]:
        return {"epoch": epoch, "step": step, "model": model.state_dict(),
                **optimisation.state_dict(), "method": method.state_dict(),
                "context": context.state_dict(), "precision": context.precision.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "total_steps": budget.total if budget.is_resolved else None,
                "steps_done": steps_done, "elapsed_s": elapsed_s,
                "finished": budget.is_resolved and steps_done >= budget.total,
                "world_size": context.world_size}

    def checkpoint(epoch: int, step: int) -> None:
        nonlocal last_saved
        log_loss()  # no checkpoint holds weights after a non-finite loss
        if context.world_size > 1:
            context.check_same("the method's state (sampled paths, importance tables) or the "
                               "supernet's structure (its splits)",
                               {"method": method.state_dict(), "structure": _structure(model)})
        if save_checkpoint is not None and context.is_main:
            save_checkpoint(state(epoch, step))
            last_saved = f"epoch {epoch} step {step}"

    progress = Progress(budget.total, initial=min(steps_done, budget.total), desc=description,
                        unit="step", enabled=context.is_main)
    epoch = start_epoch
    tick = time.perf_counter()  # training time runs from here: data, hooks and steps alike
    try:
        while epoch < budget.epochs and steps_done < budget.total:
            method.on_epoch_start(epoch, budget.epochs)
            first = start_step if epoch == start_epoch else 0  # a resume's steps are done
            epoch_batches = batches.epoch(epoch, method.data_distribution(), start=first)
            for step, (images, labels, ids) in enumerate(epoch_batches, start=first):
                if steps_done >= budget.total:
                    break  # the budget ends inside this epoch
                context.begin_step(epoch, step, steps_done)
                if channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                optimisation.zero_grad()
                with context.precision.autocast():
                    loss = method.train_step(trained, images, labels, ids, **step_kwargs)
                losses.add(loss, steps_done)
                if context.backward_calls != passes:
                    raise RuntimeError(f"{type(method).__name__} called context.backward "
                                       f"{context.backward_calls} times in a step but declares "
                                       f"backward_passes() = {passes}; every backward pass "
                                       f"goes through context.backward")
                context.precision.unscale(optimisation.optimizers.values())
                method.clip_gradients(parameters, config.grad_clip_norm)
                learning_rate = optimisation.learning_rate()  # the rate this step trains with
                optimisation.step(context.precision)
                steps_done += 1
                now = time.perf_counter()
                elapsed_s, tick = elapsed_s + now - tick, now
                if budget.resolve(steps_done, elapsed_s, steps_done - first_step,
                                  elapsed_s - first_elapsed_s):
                    # Every process must train the same number of steps: the slowest decides.
                    budget.total = int(context.all_reduce(
                        torch.tensor([budget.total], dtype=torch.int64), "min"))
                    keep = kept_steps(config.keep_checkpoints, budget.total)
                    progress.set_total(budget.total)
                    log_loss()  # hooks below may split the supernet: not on non-finite weights
                    # The epoch count is known now: hooks scheduled by it (splits, PA&DA's
                    # smoothing) see it from this epoch on; they are idempotent.
                    method.on_epoch_start(epoch, budget.epochs)
                if log_scalar is not None and context.is_main:
                    log_scalar("train/lr", learning_rate, steps_done - 1)  # a float: no sync
                if steps_done % LOG_EVERY_STEPS == 0:
                    log_loss()
                progress.update(1)
                if keep_checkpoint is not None and steps_done in keep:
                    log_loss()
                    if context.is_main:
                        keep_checkpoint(state(epoch, step + 1))
                every = config.checkpoint_every_steps
                if every and (step + 1) % every == 0 and step + 1 < steps_per_epoch:
                    checkpoint(epoch, step + 1)
            else:
                method.on_epoch_end(epoch)
                epoch += 1
                checkpoint(epoch, 0)
                continue
            checkpoint(epoch, steps_done - epoch * steps_per_epoch)  # ended inside the epoch
            break
        if steps_done == 0 and start_epoch == 0 and start_step == 0:
            checkpoint(0, 0)  # an untrained run's checkpoint: its initial weights, resumable
        log_loss()
    finally:
        progress.close()
