"""The training-method contract: a method owns its optimisers, its backward passes and its scoring.

The loop (`supernets/loop.py`) runs every method the same way, and a method talks to it only
through these calls:

- `configure_optimizers(model, config, budget) -> Optimisation`: the method builds its
  optimisers and schedules by name: "weights" (default: SGD over the supernet, the config's
  schedule over `budget.total` steps) and, for a method with architecture parameters, its own
  (no weight decay, its own lr). The loop zeroes, steps and checkpoints all of them; the
  method keeps the references it needs (Few-Shot and GM-NAS copy momentum into the weights
  optimiser's state when they split).
- `train_step(supernet, images, labels, sample_ids, context) -> Tensor`: forward passes and
  exactly `backward_passes()` calls of `context.backward(loss)` (never `loss.backward()`);
  returns the loss to log, detached and on the device (the loop reads it every few steps: no
  host-device synchronisation per step). `supernet` is what the passes run through: the
  supernet, or under torchrun its DDP wrapper (`setup` received the supernet itself).
  `context.validation_batches()` gives validation data (bi-level methods),
  `context.all_reduce(t)` / `all_gather(t)` combine statistics over processes,
  `context.is_main` says whether this process writes. The loop then clips (`clip_gradients`) and steps.
- hooks: `setup`, `on_epoch_start` (idempotent), `data_distribution`, `on_epoch_end`;
  `state_dict` holds everything needed to resume bit-identically, also mid-epoch.
- `score(supernet, arch, data) -> float`: validation accuracy of `arch` with inherited weights
  and the method's BatchNorm mode; `nas search`, `nas correlate` and export all score with it.
- `build_supernet()`: the supernet the method trains (split methods: a partitioned one), as
  `make_supernet()` builds it with the method's options applied (`bn_affine`); evaluation,
  search and export build it through the method, so they see its structure.
- `derive() -> Architecture | None`: the architecture the method itself chose (gradient
  methods: their architecture weights'), or None where a searcher chooses.

Training samplers (which paths a step trains) are the project's own `Sampler`s
(`search_spaces/base.py`); searchers are Optuna samplers and never train.
"""
from __future__ import annotations

from abc import abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal, Mapping, Sequence

import torch
from torch import nn

from nas.errors import ConfigError
from search_spaces.base import Architecture, Sampler, SearchSpace, Supernet
from supernets.evaluation import ScoringData, accuracy, recalibrate_batchnorm
from supernets.loop import StepMethod
from supernets.step_context import Batches, StepContext


BN_MODES = ("recalibrate", "batch-stats", "running")


@dataclass(frozen=True)
class MethodConfig:
    """Base of each method's options; subclasses add fields with defaults citing their source.

    `bn_mode` is how BatchNorm normalises when a path is scored (How to Train Your Super-Net,
    Yu et al., compares them): "recalibrate" (default) recomputes running statistics for the
    path from training batches first (SPOS, AlphaNet, OFA); "batch-stats" normalises every
    evaluation batch by its own statistics, as supernets built without running statistics do
    (PA&DA, Few-Shot NAS and GM-NAS on NB201); "running" scores in plain eval mode with the
    running statistics the supernet accumulated while training random paths, shared by all
    paths and never recalibrated (the heuristic Yu et al. found harmful; an exported model of
    such a run carries them as they are). Training is identical: it always uses batch statistics.

    `bn_affine` False builds the supernet with non-affine BatchNorm (no learned scale and
    shift) inside the candidate ops of its searched cells (PA&DA's NB201 supernet; Ning et al.,
    NeurIPS 2021); stem, fixed reduction blocks and head keep theirs, running statistics stay,
    and exported models are affine with scale 1 and shift 0 there (`Supernet.subnet_state_dict`).
    Cell spaces only (nb201, darts): mobilenet's elastic ops share one BatchNorm.

    `decay_unused` True gives every parameter the step's backward passes left without a
    gradient a zero one, so SGD's weight decay and momentum move ops the step did not use
    (PyTorch's behaviour before `zero_grad(set_to_none=True)`, hence much reference code's);
    False (default) leaves them untouched (megvii SPOS; `release_zero_gradients`). It applies
    to the methods that follow that single-path rule; the others refuse it.
    """

    label_smoothing: float = 0.0  # SPOS on NB201 (PA&DA baselines) trains with plain CE
    bn_mode: Literal["recalibrate", "batch-stats", "running"] = "recalibrate"
    # Training batches a path's BatchNorm statistics are recomputed from before it is scored
    # (SPOS's tester: 200 of 128 images; AlphaNet `post_bn_calibration_batch_num`: 64).
    calibration_batches: int = 10
    bn_affine: bool = True  # SPOS, AlphaNet, OFA; False: PA&DA's NB201 cells, Ning et al.
    decay_unused: bool = False  # megvii SPOS; True: PyTorch's old zero_grad() default

    def __post_init__(self) -> None:
        if self.bn_mode not in BN_MODES:
            raise ConfigError(f"unknown bn_mode {self.bn_mode!r}; choose {', '.join(BN_MODES)}")
        for name in ("bn_affine", "decay_unused"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.calibration_batches < 1:
            raise ConfigError(f"calibration_batches must be >= 1, got {self.calibration_batches}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def non_affine_candidates(supernet: Supernet) -> None:
    """Replace every BatchNorm inside `supernet.candidate_ops()` by a non-affine one (same
    features, eps, momentum and running statistics); call it before any optimiser exists."""
    for op in supernet.candidate_ops():
        for parent in list(op.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.modules.batchnorm._BatchNorm) and child.affine:
                    plain = type(child)(child.num_features, eps=child.eps, momentum=child.momentum,
                                        affine=False,
                                        track_running_stats=child.track_running_stats)
                    plain.load_state_dict({k: v for k, v in child.state_dict().items()
                                           if k not in ("weight", "bias")})
                    setattr(parent, name, plain)


def give_zero_gradients(parameters: Sequence[torch.Tensor]) -> None:
    """A zero gradient for every parameter without one (`decay_unused`): SGD then applies its
    weight decay and momentum to it, as after PyTorch's old `zero_grad()`."""
    for p in parameters:
        if p.grad is None and p.requires_grad:
            p.grad = torch.zeros_like(p)


def release_zero_gradients(parameters: Sequence[torch.Tensor]) -> None:
    """Set every all-zero gradient to None, as megvii's SPOS does after backward: an op whose
    input was a zero node (an edge after `none`) computed nothing, so SGD's weight decay and
    stale momentum must not move it either (they skip parameters without a gradient)."""
    with_grad = [p for p in parameters if p.grad is not None]
    if not with_grad:
        return
    nonzero = torch.stack([torch.count_nonzero(p.grad) for p in with_grad]).tolist()
    for p, count in zip(with_grad, nonzero):
        if count == 0:
            p.grad = None


class TrainingMethod(StepMethod):
    """A supernet training method: a sampler, a loss, its optimisers and its scoring (module doc)."""

    name: ClassVar[str]
    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    # Whether `train_step` draws `context.validation_batches()` (bi-level methods: DARTS).
    uses_validation_batches: ClassVar[bool] = False
    # Whether `train_step` ends with `self.release_zero_gradients` (single-path methods), the
    # hook `decay_unused` acts through; a method without it refuses decay_unused=true.
    releases_zero_gradients: ClassVar[bool] = True

    def __init__(self, space: SearchSpace, config: MethodConfig | None = None, seed: int = 0) -> None:
        config = self.config_class() if config is None else config
        if not isinstance(config, self.config_class):
            raise ConfigError(f"method {self.name} takes a {self.config_class.__name__}, "
                              f"got a {type(config).__name__}")
        if config.decay_unused and not self.releases_zero_gradients:
            raise ConfigError(f"method {self.name} does not follow the single-path gradient rule; "
                              f"decay_unused=true applies to the single-path methods (spos "
                              f"and those built on it)")
        if not config.bn_affine and space.weight_entanglement == "always":
            raise ConfigError(f"space {space.name} shares one elastic BatchNorm among its "
                              f"candidates; bn_affine=false needs a cell space (nb201, darts)")
        self.space, self.config, self.seed = space, config, seed
        self.sampler = self.build_sampler()
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.batches: Batches | None = None
        self.context: StepContext = StepContext()
        self._parameters: list[nn.Parameter] | None = None

    def build_supernet(self) -> Supernet:
        """`make_supernet()` with the method's options applied (`bn_affine`)."""
        supernet = self.make_supernet()
        if not self.config.bn_affine:
            non_affine_candidates(supernet)
        return supernet

    def make_supernet(self) -> Supernet:
        """The supernet this method trains, as its space builds it (override: split, entangled)."""
        return self.space.build_supernet()

    @abstractmethod
    def build_sampler(self) -> Sampler: ...

    @abstractmethod
    def train_step(self, supernet: Supernet, images: torch.Tensor, labels: torch.Tensor,
                   sample_ids: torch.Tensor, context: StepContext | None = None) -> torch.Tensor:
        """`context` None: a single process with no validation data (a step run by hand)."""

    def setup(self, model: nn.Module, optimizer: torch.optim.Optimizer | None, batches: Batches,
              context: StepContext | None = None) -> None:
        self.model, self.optimizer, self.batches = model, optimizer, batches
        self.context = context if context is not None else StepContext()
        self._parameters = list(model.parameters())

    def release_zero_gradients(self, supernet: Supernet) -> None:
        """The single-path rule after a step's backward passes (`release_zero_gradients`), or
        with `decay_unused` its opposite: every parameter gets a gradient (`give_zero_gradients`)."""
        # `supernet` is the model `setup` received, or its DDP wrapper (`.module`).
        is_own = supernet is self.model or getattr(supernet, "module", None) is self.model
        parameters = self._parameters if is_own else None
        parameters = parameters if parameters is not None else list(supernet.parameters())
        if self.config.decay_unused:
            give_zero_gradients(parameters)
        else:
            release_zero_gradients(parameters)

    def score(self, supernet: Supernet, arch: Architecture, data: ScoringData) -> float:
        """Top-1 accuracy (%) of `arch` on `data.evaluation` with inherited weights, BatchNorm
        as `config.bn_mode` says: running statistics recomputed for the path from the first
        `config.calibration_batches` batches of `data.calibration` first ("recalibrate"), each
        evaluation batch normalised by its own statistics ("batch-stats"), or plain eval mode
        on the supernet's running statistics as training left them ("running")."""
        forward = lambda x: supernet(x, arch)  # noqa: E731
        if self.config.bn_mode == "batch-stats":
            return accuracy(supernet, forward, data.evaluation.epoch(0), batch_statistics=True)
        self.calibrate(supernet, arch, data)
        return accuracy(supernet, forward, data.per_image_batches())

    def calibrate(self, supernet: Supernet, arch: Architecture, data: ScoringData) -> None:
        """Set every BatchNorm's running statistics to what an exported model of `arch`
        carries: recomputed for `arch` ("recalibrate" and "batch-stats": a plain model
        normalises with running statistics), or, under "running", the supernet's own as
        training left them (nothing is done; scoring and export then agree)."""
        if self.config.bn_mode == "running":
            return
        if data.calibration is None:
            raise ConfigError("recalibrating BatchNorm needs calibration batches")
        recalibrate_batchnorm(supernet, lambda x: supernet(x, arch), data.calibration.epoch(0),
                              self.config.calibration_batches)

    def derive(self) -> Architecture | None:
        """A method that learns architecture weights returns the architecture they derive;
        single-path methods (this default) return None and leave the choice to a searcher."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
