"""The four nouns every space, method and searcher speaks: Decision, Architecture, SearchSpace, Supernet.

A search space is an ordered list of named categorical `Decision`s plus builders for its
weight-sharing supernet and for a standalone model of one architecture. An `Architecture` is a
frozen value: the space's name and one choice per decision, with one canonical string.

Two kinds of thing propose architectures, and they do not share an interface:

- Training samplers decide which paths a supernet trains on each step. They are the project's
  own `Sampler`s (below): `ask_indices` / `ask`, `path_weight`, and a resumable generator state.
  Uniform (SPOS), region-uniform (split supernets) and importance (PA&DA) sampling implement
  it; a training method owns its sampler, and the sandwich rule adds its fixed largest and
  smallest paths itself.
- Searchers decide which architectures to score on a trained supernet. They are Optuna samplers
  (`optuna.samplers.BaseSampler`: TPE and random today; a searcher of the project's own
  subclasses it) driven through one Optuna study by `nas.search.loop.run_search`, which asks the
  study for trials, scores them and tells it the result. The study is the searcher's whole state, so storage, resume and
  many workers come with it.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from nas.errors import ArchitectureError, ConfigError

Choice = Any  # str or int: whatever the space's canonical string spells


@dataclass(frozen=True)
class Decision:
    """One named categorical choice. `choices` are ordered; a space documents what the order means."""

    name: str
    choices: tuple[Choice, ...]

    def __post_init__(self) -> None:
        if len(self.choices) == 0 or len(set(self.choices)) != len(self.choices):
            raise ValueError(f"decision {self.name!r} needs distinct choices, got {self.choices}")

    def index(self, value: Choice) -> int:
        try:
            return self.choices.index(value)
        except ValueError:
            valid = ", ".join(map(str, self.choices))
            raise ArchitectureError(
                f"{self.name} = {value!r} is not a valid choice; choose one of: {valid}"
            ) from None


@dataclass(frozen=True)
class Skeleton:
    """The macro network a space's cells or blocks sit in, and the data it sees.

    `width` and `cells` of None mean the space's own default (NB201: C=16, N=5; DARTS: C=16,
    3 layers, DARTS's search network has 8; mobilenet: first-conv width 16, 5 elastic stages).
    """

    in_channels: int = 3
    num_classes: int = 10
    image_size: int = 32
    width: int | None = None
    cells: int | None = None

    def __post_init__(self) -> None:
        for name in ("in_channels", "num_classes", "image_size", "width", "cells"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"skeleton {name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class Architecture:
    """One choice per decision of a space. Equal and hashed by (space, values); `str()` is canonical.

    Build it with `space.architecture(values)` or `space.parse(text)`, which validate and
    canonicalise; `names` and `text` are derived and do not take part in equality.
    """

    space: str
    values: tuple[Choice, ...]
    names: tuple[str, ...] = field(compare=False, repr=False)
    text: str = field(compare=False, repr=False)

    def __str__(self) -> str:
        return self.text

    def __getitem__(self, name: str) -> Choice:
        try:
            return self.values[self.names.index(name)]
        except ValueError:
            raise KeyError(f"{self.space} architectures have no decision {name!r}") from None

    def as_dict(self) -> dict[str, Choice]:
        return dict(zip(self.names, self.values))


class SearchSpace(ABC):
    """Decisions plus builders. Subclasses set `name`, build `decisions` in `__init__`, and
    implement `format`, `parse`, `build_supernet` and `build_model`.

    A subclass whose decisions can be inactive (mobilenet: kernels of blocks beyond a stage's
    depth) overrides `canonical_values` so that equal networks are equal architectures.
    """

    name: ClassVar[str]
    default_width: ClassVar[int]
    default_cells: ClassVar[int]
    # How GM-NAS ranks the decisions it could split: "cut" (its NB201 code: the heaviest cut
    # between the two groups) or "within" (its DARTS code: the least within-group distance).
    split_edge_criterion: ClassVar[str] = "cut"
    # Whether candidates share weights (TangleNAS's weight entanglement): "none" (cell spaces'
    # own supernets), "optional" (an entangled supernet exists beside the plain one: NB201's
    # 1x1 and 3x3 convs) or "always" (mobilenet's elastic kernels and widths).
    weight_entanglement: ClassVar[str] = "none"

    def __init__(self, skeleton: Skeleton | None = None) -> None:
        self.skeleton = skeleton or Skeleton()
        self.width = self.skeleton.width or self.default_width
        self.cells = self.skeleton.cells or self.default_cells
        self.decisions: tuple[Decision, ...] = tuple(self._build_decisions())
        self._names = tuple(d.name for d in self.decisions)

    # ---- what a space defines -------------------------------------------------------------
    @abstractmethod
    def _build_decisions(self) -> Sequence[Decision]: ...

    @abstractmethod
    def format(self, values: tuple[Choice, ...]) -> str:
        """The canonical string of already-validated, canonical values."""

    @abstractmethod
    def parse(self, text: str) -> Architecture:
        """Inverse of `format`; raises `ArchitectureError` naming the bad token."""

    @abstractmethod
    def build_supernet(self) -> "Supernet": ...

    @abstractmethod
    def build_model(self, arch: Architecture) -> nn.Module:
        """A plain `nn.Module` of `arch`: no supernet code in its forward path."""

    def canonical_values(self, values: tuple[Choice, ...]) -> tuple[Choice, ...]:
        return values

    # ---- the continuous relaxation of gradient-based methods (search_spaces/relaxation.py) --
    def relaxed_decisions(self) -> tuple[Decision, ...]:
        """The decisions a gradient-based method learns mixing weights over."""
        raise ConfigError(f"space {self.name} has no continuous relaxation for gradient-based "
                          f"methods")

    def derive(self, probabilities: Sequence[Sequence[float]]) -> Architecture:
        """The architecture the learned weights (one row per relaxed decision) stand for."""
        raise ConfigError(f"space {self.name} has no continuous relaxation to derive from")

    def build_entangled_supernet(self) -> "Supernet":
        """A supernet whose entangled candidates share one weight tensor (TangleNAS)."""
        raise ConfigError(f"space {self.name} has no weight-entangled decisions; search it with "
                          f"--method darts or drnas")

    def is_always_active(self, decision: int) -> bool:
        """Whether decision `decision` (an index) matters in every architecture, i.e. no
        `canonical_values` ever overwrites it. Splitting a supernet (Few-Shot, GM-NAS) on a
        decision that can be inactive would send architectures to no region or the wrong one."""
        return True

    def split_decisions(self) -> list[int]:
        """The decisions a supernet is split on by default (Few-Shot NAS takes the first, GM-NAS
        picks among them): each with several candidates that every architecture uses."""
        return [i for i, d in enumerate(self.decisions)
                if len(d.choices) > 1 and self.is_always_active(i)]

    def largest(self) -> Architecture:
        """The subnet with the most parameters and FLOPs: the sandwich rule's teacher
        (BigNAS / AlphaNet `sample_max_subnet`). A space documents its choice when it defines one."""
        raise ConfigError(f"space {self.name} defines no largest subnet; the sandwich rule needs "
                          f"them")

    def smallest(self) -> Architecture:
        """The subnet with the fewest parameters and FLOPs that still computes something
        (BigNAS / AlphaNet `sample_min_subnet`), the last path of a sandwich-rule step."""
        raise ConfigError(f"space {self.name} defines no smallest subnet; the sandwich rule needs "
                          f"them")

    # ---- shared behaviour -----------------------------------------------------------------
    def architecture(self, values: Sequence[Choice] | Mapping[str, Choice]) -> Architecture:
        if isinstance(values, Mapping):
            unknown = set(values) - set(self._names)
            if unknown:
                raise ArchitectureError(
                    f"{self.name} has no decision {sorted(unknown)[0]!r}; decisions: "
                    f"{', '.join(self._names)}"
                )
            missing = [n for n in self._names if n not in values]
            if missing:
                raise ArchitectureError(f"{self.name} architecture lacks decision {missing[0]!r}")
            values = [values[n] for n in self._names]
        values = tuple(values)
        if len(values) != len(self.decisions):
            raise ArchitectureError(
                f"{self.name} architectures have {len(self.decisions)} decisions, got {len(values)}"
            )
        for decision, value in zip(self.decisions, values):
            decision.index(value)
        values = self.canonical_values(values)
        return Architecture(self.name, values, self._names, self.format(values))

    def from_indices(self, indices: Sequence[int]) -> Architecture:
        return self.architecture([d.choices[i] for d, i in zip(self.decisions, indices)])

    def sample(self, rng: np.random.Generator) -> Architecture:
        """Uniform over each decision independently (SPOS), then canonicalised."""
        return self.from_indices([int(rng.integers(len(d.choices))) for d in self.decisions])

    def size(self) -> int:
        """Number of distinct architectures (distinct canonical strings)."""
        return math.prod(len(d.choices) for d in self.decisions)

    def enumerate(self) -> Iterator[Architecture]:
        """Every architecture, in index order; only sensible for small spaces such as nb201."""
        for indices in np.ndindex(*(len(d.choices) for d in self.decisions)):
            yield self.from_indices(indices)

    def check(self, arch: Architecture) -> Architecture:
        if not isinstance(arch, Architecture) or arch.space != self.name:
            other = getattr(arch, "space", type(arch).__name__)
            raise ArchitectureError(
                f"architecture of space {other!r} given to space {self.name!r}: {arch}"
            )
        return arch

    def input_shape(self) -> tuple[int, int, int]:
        s = self.skeleton
        return (s.in_channels, s.image_size, s.image_size)

    def params_m(self, arch: Architecture) -> float:
        """Parameters of the standalone model, in millions (all of them, BN affine included)."""
        model = self.build_model(self.check(arch))
        return sum(p.numel() for p in model.parameters()) / 1e6

    def flops_m(self, arch: Architecture) -> float:
        """Multiply-accumulates of one forward pass, in millions (NAS-Bench-201 convention)."""
        from search_spaces.cost import count_flops

        model = self.build_model(self.check(arch))
        return count_flops(model, self.input_shape()) / 1e6


class Supernet(nn.Module, ABC):
    """Weight-sharing network of a space: `forward(x, arch)` runs only the ops `arch` chooses.

    The architecture is an argument, never state set beforehand, so one supernet serves many
    paths at once without hidden "active subnet" state.
    """

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space

    @abstractmethod
    def forward(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor: ...

    def subnet_state_dict(self, arch: Architecture, model: nn.Module) -> dict[str, torch.Tensor]:
        """Weights of `arch` shaped for `model = space.build_model(arch)`.

        Cell spaces name the standalone model's modules as the supernet's, so the subnet's
        weights are those with the model's keys. Weight-entangled spaces override to slice.
        A model's BatchNorm is always affine; where its supernet twin is not (`bn_affine=false`),
        it gets scale 1 and shift 0 (`non_affine_default`), the same function.
        """
        own = self.state_dict()
        result = {}
        for key, target in model.state_dict().items():
            value = own[key] if key in own else self.non_affine_default(key)
            if value is None or value.shape != target.shape:
                raise KeyError(f"supernet has no weight {key!r} of shape {tuple(target.shape)}")
            result[key] = value.detach().clone()
        return result

    def non_affine_default(self, key: str) -> torch.Tensor | None:
        """For `key` the weight or bias of one of this supernet's non-affine BatchNorms: ones or
        zeros (what an affine BatchNorm computing the same function holds); else None."""
        prefix, _, leaf = key.rpartition(".")
        try:
            module = self.get_submodule(prefix)
        except AttributeError:
            return None
        if (not isinstance(module, nn.modules.batchnorm._BatchNorm) or module.affine
                or leaf not in ("weight", "bias")):
            return None
        fill = torch.ones if leaf == "weight" else torch.zeros
        device = module.running_mean.device if module.running_mean is not None else None
        return fill(module.num_features, device=device)

    def candidate_ops(self) -> Iterator[nn.Module]:
        """The candidate ops of the searched cells, one module each (`bn_affine=false` makes
        the BatchNorm inside them non-affine); stem, fixed blocks and head are not among them.
        Default: a supernet whose candidates share weights with no separable op."""
        raise ConfigError(f"the {self.space.name} supernet has no separable candidate ops (its "
                          f"candidates share weights and BatchNorm); bn_affine=false needs a "
                          f"cell space such as nb201 or darts")


class Sampler(ABC):
    """Which paths a supernet trains next: the training-sampler interface (module doc).

    `ask_indices(n)` draws n paths as one candidate index per decision (before any
    canonicalisation); `ask(n)` returns them as architectures. `path_weight(indices)` is the
    ratio of the uniform single-path probability to this sampler's, prod_d (1/K_d) / q(c), so
    a method can turn a loss under this sampler into an unbiased estimate of the uniform one.
    `state_dict` / `load_state_dict` hold the generator (and any probabilities) so a resumed run
    draws the same paths. A sampler may have knobs its owning method sets (PA&DA's
    `ImportanceSampler.set_probabilities`); nothing else calls them.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    @abstractmethod
    def ask_indices(self, n: int = 1) -> list[tuple[int, ...]]: ...

    def ask(self, n: int = 1) -> list[Architecture]:
        return [self.space.from_indices(indices) for indices in self.ask_indices(n)]

    @abstractmethod
    def path_weight(self, indices: Sequence[int]) -> float: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Default: stateless."""
