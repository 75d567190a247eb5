"""PA&DA: jointly sampling PAth and DAta by importance (Lu et al., CVPR 2023, arXiv 2302.14772).

The paper relates the supernet gradient's variance to the sampling distributions of paths and
images and finds the variance-minimising ones proportional to each path's and each image's
normalised gradient norm (abstract). Both are estimated during an epoch and used, smoothed
towards uniform by tau = epoch / epochs, the next epoch (official `nasbench201/train_panda_201.py`):

- data: g_n = ||softmax(z_n) - t_n||_2, the norm of the per-sample cross-entropy's gradient
  with respect to the logits (t_n the target distribution), costs no extra backward pass; s_n is
  its mean over the epoch's draws of image n (0 if never drawn); p_n = tau s_n/sum(s) + (1-tau)/N,
  from which the loop draws the next epoch's N images with replacement.
- paths: decision d draws candidate c independently with q_d(c) = tau S_d(c)/sum(S_d) + (1-tau)/K_d.

`path_scores` sets S. "paper": S_d(c) is the mean gradient norm of the steps whose path chose c
at d, i.e. the per-decision marginal of ||grad L(a)||, for every candidate of every decision, so
parameter-free ones are scored too; a candidate not drawn in an epoch keeps its last score, and
one never drawn gets its decision's mean. "code" (the official NB201 script): a candidate's own
weights' gradient norms, read after clipping, summed over the cells and divided by how many
decisions chose it, kept as S <- (S + current)/2 within an epoch; one S per set of decisions with
the same choices. Own weights are found by name: the parameters one of whose dotted name parts
is the candidate's value (`cells.0.edges.3.nor_conv_3x3.conv.weight` belongs to `nor_conv_3x3`)
and that have a gradient this step. Parameter-free candidates thus score 0 and keep only
(1-tau)/K; decisions whose candidates own nothing (DARTS input pairs) stay uniform, and a space
whose candidates share all weights (mobilenet) cannot use "code".

`importance_weighting` scales each image's loss by 1/(N p_n) and the path's by
prod_d 1/(K_d q_d(c_d)), so the expected gradient over the samplers is the uniform-sampling
(SPOS) gradient. The result the abstract states (variance minimised by p proportional to the
gradient norm) holds for this reweighted, unbiased estimator (Zhao & Zhang, ICML 2015;
Katharopoulos & Fleuret, ICML 2018), hence on by default; the official script does not
reweight (plain batch-mean CE), which `importance_weighting=false` reproduces. The weights are
bounded by 1/(1-tau) <= epochs per image and per decision, so a path's, a product over
decisions, can be large in spaces of many decisions (DARTS: 24); the loop's clipping bounds the
step. `path_scores=code importance_weighting=false` is the official NB201 algorithm.

Under torchrun the image scores of each step are gathered from every rank (`all_gather`) and
the path scores come from the synchronised gradients, so every rank holds the same tables and
draws the same paths and the same data distribution.
"""
from __future__ import annotations

import copy
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import CheckpointError, ConfigError, TrainingError
from search_spaces.base import Sampler, SearchSpace, Supernet
from search_spaces.importance import ImportanceSampler, smoothed
from supernets.methods.base import MethodConfig, TrainingMethod
from supernets.step_context import Batches, StepContext


@dataclass(frozen=True)
class PADAConfig(MethodConfig):
    # "paper": every candidate scored by the gradient norm of the paths that chose it;
    # "code": train_panda_201.py `operatio_gradient_norm_prob` (own conv weights only).
    path_scores: Literal["paper", "code"] = "paper"
    # 1/(N p) data and 1/(K q) path weights: the unbiased estimator the paper's variance result
    # is about; the official script trains on the unweighted mean CE (false).
    importance_weighting: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.path_scores not in ("paper", "code"):
            raise ConfigError(f"unknown path_scores {self.path_scores!r}; choose paper or code")
        if not isinstance(self.importance_weighting, bool):
            raise ConfigError(f"importance_weighting must be true or false, got "
                              f"{self.importance_weighting!r}")


def logit_gradient_norms(logits: torch.Tensor, labels: torch.Tensor,
                         label_smoothing: float = 0.0) -> torch.Tensor:
    """||d CE(z_n, y_n) / d z_n||_2 = ||softmax(z_n) - t_n||_2 per row of `logits` (B, K), with
    t_n the (smoothed) one-hot target: the official per-sample score, free of extra backward."""
    k = logits.shape[1]
    targets = F.one_hot(labels, k).to(logits.dtype) * (1.0 - label_smoothing) + label_smoothing / k
    return torch.linalg.vector_norm(logits.softmax(dim=1) - targets, dim=1)  # (B,)


def _choice_groups(space: SearchSpace) -> list[list[int]]:
    """Decisions with identical choices, in order of appearance (the code's shared op list)."""
    groups: dict[tuple, list[int]] = {}
    for d, decision in enumerate(space.decisions):
        groups.setdefault(decision.choices, []).append(d)
    return list(groups.values())


def _owned_parameters(model: nn.Module, space: SearchSpace,
                      groups: list[list[int]]) -> list[list[list[nn.Parameter]]]:
    """For each group and candidate, the parameters named after the candidate's value."""
    named = [(set(name.split(".")), p) for name, p in model.named_parameters()]
    owned = [[[p for parts, p in named if isinstance(c, str) and c in parts]
              for c in space.decisions[members[0]].choices] for members in groups]
    if not any(params for group in owned for params in group):
        raise ConfigError(f"path_scores=code scores candidates by their own weights, but no "
                          f"candidate of {space.name} owns any (weights shared across choices); "
                          f"use path_scores=paper")
    return owned


class PADA(TrainingMethod):
    """One importance-sampled path per step on importance-sampled images (see module doc)."""

    name = "pada"
    config_class = PADAConfig

    def __init__(self, space: SearchSpace, config: PADAConfig | None = None, seed: int = 0) -> None:
        super().__init__(space, config, seed)
        self.tau = 0.0  # this epoch's smoothing, epoch / epochs (train_panda_201.py `main`)
        sizes = [len(d.choices) for d in space.decisions]
        # "paper": this epoch's sum and count of path gradient norms per (decision, candidate),
        # and the latest epoch mean (NaN until first drawn).
        self._path_sum = [[0.0] * k for k in sizes]
        self._path_count = [[0] * k for k in sizes]
        self._path_score = [[math.nan] * k for k in sizes]
        # "code": one running own-weight norm per candidate of each group of identical decisions.
        self._groups = _choice_groups(space)
        self._op_norm = [[0.0] * sizes[members[0]] for members in self._groups]
        self._owned: list[list[list[nn.Parameter]]] | None = None
        self._data_p: torch.Tensor | None = None  # (N,) this epoch's data distribution
        self._sample_sum: torch.Tensor | None = None  # (N,) this epoch's sums of g_n
        self._sample_count: torch.Tensor | None = None  # (N,) and numbers of draws
        self._position: torch.Tensor | None = None  # dataset index -> position in batches.indices
        self._step: tuple[tuple[int, ...], float] | None = None  # path and weight to score

    def build_sampler(self) -> Sampler:
        return ImportanceSampler(self.space, self.seed)

    def setup(self, model: nn.Module, optimizer: torch.optim.Optimizer | None, batches: Batches,
              context: StepContext | None = None) -> None:
        super().setup(model, optimizer, batches, context)
        indices = batches.indices.cpu()
        n = len(indices)
        if self._sample_sum is None:
            self._sample_sum = torch.zeros(n, dtype=torch.float64)
            self._sample_count = torch.zeros(n, dtype=torch.float64)
        elif len(self._sample_sum) != n:
            raise CheckpointError(f"the PA&DA state scores {len(self._sample_sum)} training images "
                                  f"but this run trains on {n}; resume with the same data options")
        self._position = torch.full((int(indices.max()) + 1,), -1, dtype=torch.long)
        self._position[indices] = torch.arange(n)
        if self.config.path_scores == "code":
            self._owned = _owned_parameters(model, self.space, self._groups)

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        self.tau = epoch / epochs

    def data_distribution(self) -> np.ndarray | None:
        return None if self._data_p is None else self._data_p.numpy()

    def train_step(self, supernet: Supernet, images: torch.Tensor, labels: torch.Tensor,
                   sample_ids: torch.Tensor, context: StepContext | None = None) -> torch.Tensor:
        """One sampled path, (importance-weighted) CE, backward; returns the loss to log."""
        context = context or self.context
        (indices,) = self.sampler.ask_indices(1)
        logits = supernet(images, self.space.from_indices(indices))  # (B, classes)
        smoothing = self.config.label_smoothing
        losses = F.cross_entropy(logits, labels, reduction="none", label_smoothing=smoothing)
        # Every rank records every rank's images, so the tables (and the checkpoint) are the run's.
        scores = logit_gradient_norms(logits.detach(), labels, smoothing)
        self.record_sample_scores(context.all_gather(sample_ids), context.all_gather(scores))
        path_weight, weights = 1.0, torch.ones_like(losses)
        if self.config.importance_weighting:
            path_weight = self.sampler.path_weight(indices)
            if self._data_p is not None:  # else the epoch is a plain shuffle: uniform
                p = self._data_p[self._positions(sample_ids)]
                weights = (1.0 / (len(self._data_p) * p)).to(losses)
        data_weighted = (losses * weights).mean()  # an unbiased estimate of the uniform loss
        context.backward(data_weighted * path_weight)
        self.release_zero_gradients(supernet)
        self._step = (indices, path_weight)
        # Logged without the path weight (too noisy to read), with the data weights, so the
        # curve estimates the same loss as SPOS's whatever images the epoch drew.
        return data_weighted.detach()

    def clip_gradients(self, parameters: Sequence[torch.Tensor], max_norm: float) -> None:
        """Clip as the loop does, then score the step's path with the path weight divided out:
        "paper" by the pre-clip norm the clipping computes anyway; "code" by its ops' own
        gradient norms as clipping leaves them (the official script reads them after
        `clip_grad_norm_`), with the clip factor the unweighted gradient would have had, so
        a rarely drawn path (large weight, always clipped) is not scored down twice."""
        with_grad = [p for p in parameters if p.grad is not None]
        own = self._own_norms() if self.config.path_scores == "code" else None
        total = float(nn.utils.clip_grad_norm_(with_grad, max_norm if max_norm > 0 else math.inf))
        if not math.isfinite(total):
            if self.context.precision.scaler is not None:
                # fp16 loss scaling overflows now and then by design: the scaler skips this
                # step and lowers the scale, so the step scores nothing either.
                self._step = None
                return
            # The path weight is a product over decisions and can overflow float32, as can the
            # loss itself: stop here rather than step into NaNs.
            raise TrainingError(f"PA&DA's importance-weighted gradient norm became {total} at "
                                f"global step {self.context.global_step} (the loss or the "
                                f"importance weights overflowed); lower the lr, or use "
                                f"--method-opt importance_weighting=false")
        if self._step is None:
            return
        (indices, path_weight), self._step = self._step, None
        unweighted = total / path_weight
        if self.config.path_scores == "paper":
            self.record_path_score(indices, unweighted)
        else:
            clip_factor = min(1.0, max_norm / (unweighted + 1e-6)) if max_norm > 0 else 1.0
            self._record_own_norms(indices, own, clip_factor / path_weight)

    def record_sample_scores(self, sample_ids: torch.Tensor, scores: torch.Tensor) -> None:
        """Add per-image scores g_n (B,) for the images with dataset indices `sample_ids`."""
        positions = self._positions(sample_ids)
        self._sample_sum.index_add_(0, positions, scores.detach().cpu().to(torch.float64))
        self._sample_count.index_add_(0, positions, torch.ones(len(positions), dtype=torch.float64))

    def record_path_score(self, indices: Sequence[int], grad_norm: float) -> None:
        """Credit a path's gradient norm to every (decision, candidate) it chose ("paper")."""
        for d, c in enumerate(indices):
            self._path_sum[d][c] += grad_norm
            self._path_count[d][c] += 1

    def _own_norms(self) -> list[list[float]]:
        """Per group and candidate, the summed gradient norms of its own weights this step."""
        return [[sum(float(torch.linalg.vector_norm(p.grad.double())) for p in params
                     if p.grad is not None) for params in candidates]
                for candidates in self._owned]

    def _record_own_norms(self, indices: Sequence[int], own: list[list[float]],
                          scale: float) -> None:
        """train_panda_201.py `operatio_gradient_norm_prob`, generalised to named candidates:
        a candidate's own-weight norm (times `scale`), divided by how many decisions chose it."""
        for g, members in enumerate(self._groups):
            for c, uses in Counter(indices[d] for d in members).items():
                current = own[g][c] * scale / uses
                if current != 0.0:  # np.mean([old, current]): an EMA with factor 0.5
                    self._op_norm[g][c] = (self._op_norm[g][c] + current) / 2

    def _positions(self, sample_ids: torch.Tensor) -> torch.Tensor:
        positions = self._position[sample_ids.cpu()]
        if bool((positions < 0).any()):
            raise ValueError("sample_ids holds images outside the training batches' indices")
        return positions

    def on_epoch_end(self, epoch: int) -> None:
        """Next epoch's distributions from this epoch's scores (train_panda_201.py, end of
        `train`); then the epoch tables restart, which on_epoch_start must not do (a resumed
        run calls it again mid-epoch)."""
        if self.config.path_scores == "paper":
            self.sampler.set_probabilities(self._paper_path_probabilities())
        else:
            rows = [smoothed(torch.tensor(norms, dtype=torch.float64), self.tau)
                    for norms in self._op_norm]
            group_of = {d: g for g, members in enumerate(self._groups) for d in members}
            self.sampler.set_probabilities([rows[group_of[d]] for d in range(len(group_of))])
        counts = self._sample_count
        scores = torch.where(counts > 0, self._sample_sum / counts.clamp_min(1.0), 0.0)
        self._data_p = smoothed(scores, self.tau)
        self._sample_sum.zero_()
        self._sample_count.zero_()
        self._path_sum = [[0.0] * len(row) for row in self._path_sum]
        self._path_count = [[0] * len(row) for row in self._path_count]
        self._op_norm = [[0.0] * len(row) for row in self._op_norm]  # the code resets per epoch

    def _paper_path_probabilities(self) -> list[torch.Tensor]:
        """Candidates drawn this epoch take this epoch's mean; the others keep their last
        score, and a candidate never drawn takes its decision's mean (neither starved nor
        favoured)."""
        result = []
        for sums, counts, scores in zip(self._path_sum, self._path_count, self._path_score):
            for c, count in enumerate(counts):
                if count:
                    scores[c] = sums[c] / count
            seen = [s for s in scores if not math.isnan(s)]
            fill = sum(seen) / len(seen) if seen else 0.0
            row = torch.tensor([fill if math.isnan(s) else s for s in scores], dtype=torch.float64)
            result.append(smoothed(row, self.tau))
        return result

    def state_dict(self) -> dict[str, Any]:
        tensors = {"data_probabilities": self._data_p, "sample_sum": self._sample_sum,
                   "sample_count": self._sample_count}
        return {**super().state_dict(),
                **{k: None if v is None else v.clone() for k, v in tensors.items()},
                **copy.deepcopy({"path_sum": self._path_sum, "path_count": self._path_count,
                                 "path_score": self._path_score, "op_norm": self._op_norm})}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        for key, attribute in (("data_probabilities", "_data_p"), ("sample_sum", "_sample_sum"),
                               ("sample_count", "_sample_count")):
            setattr(self, attribute, None if state[key] is None else state[key].clone())
        for key in ("path_sum", "path_count", "path_score", "op_norm"):
            setattr(self, f"_{key}", copy.deepcopy(list(state[key])))
