"""EPNAS as an Optuna sampler: progressive search where a learned surrogate's predictions are
sampling probabilities (Perez-Rua, Baccouche, Pateux, "Efficient Progressive Neural
Architecture Search", BMVC 2018; the authors' code is `juanmanpr/mfas`, `models/searchable.py`
`_epnas` and `models/search/tools.py`).

The progression. PNAS-style search grows a cell one block at a time; a search space here is a
fixed list of named decisions instead, so a *block* is the decisions whose names share all but
their last part (DARTS: one node's inputs and two ops, `normal.node3.*`; mobilenet: one
inverted-residual block's kernel and expansion; NB201: one edge; the rest alone), in the space's
order. Level l of the progression fixes blocks 0..l. A partial configuration is evaluated as a
whole architecture whose later decisions are drawn uniformly, so its score estimates the mean
over its completions; from the last level of the first pass on, configurations are whole
architectures.

One round per level, K trials each (fewer when there are fewer candidates):
- the candidates are the previous round's configurations, each with the level's block set to
  every one of its choices (`merge_unfolded_with_sampled`: in the first pass this appends the
  block, in later passes it re-decides a block of whole architectures);
- the very first round evaluates every candidate (nothing to predict from yet; a first block
  with more than K choices leaves K of them, drawn by their measured scores); later the
  surrogate predicts each candidate's score, p_i = score_i / sum(score), sharpened as
  p_i^(1/T) and renormalised, and K are drawn without replacement (`sample_k_configurations`);
- T = (T0 - Tf) exp(-(t+1)^2 / sigma^2) + Tf with t the number of rounds so far
  (`compute_temperature`; the official loop computes t as pass x search iterations + level,
  where pass x levels + level is meant), so sampling starts near uniform and ends near greedy;
- after the last level the next pass starts at level 0 again from the last round's
  configurations, with the surrogate kept.
The surrogate. The official one is an LSTM (100 hidden) over the sequence of block encodings,
needed there because PNAS cells have any number of blocks. Every configuration here has the
same decisions, so a fixed-length encoding (one-hot per decision, all zeros where a decision is
not fixed yet) carries the same information, and a one-hidden-layer MLP of the same width over
it is the equivalent small model. It learns from every completed trial at every prefix length
(the prefix's target is the score of that trial's completion), so it predicts partial and whole
configurations alike.

State. Everything is derived from the study: a round's configurations are the prefixes of the
trials numbered in that round, the surrogate is fitted on the trials completed before the round
began, and random draws come from generators seeded by (seed, round) and (seed, trial number).
A resumed study therefore proposes what an uninterrupted one would, and no state file exists.
Under `--constraint` a rejected proposal is a PRUNED trial: it takes its slot of the round (the
next trial number takes the next configuration) but is neither a parent nor a training row.
The decisions and their choices come from the study's `decisions` and `choices` attributes (set
by the search loop), else from the first trial's parameters. Workers sharing a study (see
`nas.search.shared_study`) may draw a round's first trials before the previous round has finished: the
search stays valid but is no longer reproducible trial for trial.
"""
from __future__ import annotations

import zlib
from typing import Any, Sequence

import numpy as np
import optuna
import torch
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nas.errors import ConfigError
from nas.searchers.optuna_search import ConstraintsFunc
from nas.searchers.trial_keyed import TrialKeyedSampler

K, T0, TF, SIGMA = 15, 10.0, 0.2, 4.0  # mfas main_searchable_ntu.py
SURROGATE_EPOCHS, SURROGATE_LR, HIDDEN, BATCH = 50, 1e-3, 100, 32


def temperature(level: int, t0: float = T0, tf: float = TF, sigma: float = SIGMA) -> float:
    """The annealed sampling temperature at a progression level (`compute_temperature`)."""
    return (t0 - tf) * float(np.exp(-((level + 1) ** 2) / sigma ** 2)) + tf


def sample_k(predictions: np.ndarray, k: int, temp: float, rng: np.random.Generator) -> list[int]:
    """K indices drawn without replacement with p_i proportional to prediction_i^(1/T)
    (`sample_k_configurations`). Predictions must be positive."""
    p = predictions / predictions.sum()
    p = p ** (1.0 / temp)
    p = p / p.sum()
    k = min(k, len(p))
    return sorted(int(i) for i in rng.choice(len(p), size=k, replace=False, p=p))


def blocks_of(names: Sequence[str]) -> list[list[str]]:
    """Consecutive decisions whose names share all but their last dotted part form a block."""
    blocks: list[list[str]] = []
    for name in names:
        head = name.rsplit(".", 1)[0] if "." in name else name
        if blocks and "." in name and "." in blocks[-1][0] and \
                blocks[-1][0].rsplit(".", 1)[0] == head:
            blocks[-1].append(name)
        else:
            blocks.append([name])
    return blocks


class Surrogate:
    """Score predictor over fixed-length encodings (module doc): a one-hidden-layer MLP."""

    def __init__(self, distributions: dict[str, CategoricalDistribution], seed: int) -> None:
        self.offsets, width = {}, 0
        for name, dist in distributions.items():
            self.offsets[name] = width
            width += len(dist.choices)
        self.distributions, self.width, self.seed = distributions, width, seed
        self.low, self.high, self.model = 0.0, 1.0, None

    def encode(self, configs: Sequence[dict[str, Any]]) -> torch.Tensor:
        x = torch.zeros(len(configs), self.width)
        for row, config in enumerate(configs):
            for name, value in config.items():
                x[row, self.offsets[name] + self.distributions[name].choices.index(value)] = 1.0
        return x

    def fit(self, configs: Sequence[dict[str, Any]], scores: Sequence[float]) -> None:
        y = torch.tensor(scores, dtype=torch.float32)
        self.low, self.high = float(y.min()), float(y.max())
        target = (y - self.low) / max(self.high - self.low, 1e-12)  # sigmoid range
        generator = torch.Generator().manual_seed(self.seed)
        self.model = torch.nn.Sequential(torch.nn.Linear(self.width, HIDDEN), torch.nn.Sigmoid(),
                                         torch.nn.Linear(HIDDEN, 1), torch.nn.Sigmoid())
        with torch.no_grad():  # a seeded initialisation, independent of torch's global RNG
            for p in self.model.parameters():
                p.uniform_(-1.0, 1.0, generator=generator).mul_(1.0 / np.sqrt(p.shape[-1]))
        x = self.encode(configs)
        optimiser = torch.optim.Adam(self.model.parameters(), lr=SURROGATE_LR)
        for _ in range(SURROGATE_EPOCHS):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), BATCH):
                batch = order[start:start + BATCH]
                loss = torch.nn.functional.mse_loss(self.model(x[batch]).squeeze(1),
                                                    target[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()

    def predict(self, configs: Sequence[dict[str, Any]]) -> np.ndarray:
        with torch.no_grad():
            unit = self.model(self.encode(configs)).squeeze(1).double().numpy()
        return self.low + unit * (self.high - self.low)


class EPNAS(TrialKeyedSampler):
    """Efficient progressive search with a sampled, temperature-annealed shortlist (module doc)."""

    name = "epnas"

    def __init__(self, k: int = K, seed: int = 0, t0: float = T0, tf: float = TF,
                 sigma: float = SIGMA) -> None:
        if k < 1 or not t0 > 0 or not tf > 0 or not sigma > 0:
            raise ConfigError(f"epnas needs k >= 1 and positive temperatures and sigma; got "
                              f"k={k}, t0={t0}, tf={tf}, sigma={sigma}")
        self.k, self.seed, self.t0, self.tf, self.sigma = k, seed, t0, tf, sigma
        self._plans: dict[tuple, list[dict[str, Any]]] = {}

    # ---- the progression, a function of the space alone -------------------------------------
    def _space(self, study: optuna.Study) -> dict[str, CategoricalDistribution] | None:
        """The decisions and their choices in the space's order: from the study's attributes
        (set by the search loop, so known from the very first trial), else from a trial's."""
        choices = study.user_attrs.get("choices")
        order = study.user_attrs.get("decisions")
        if order and isinstance(choices, dict) and all(n in choices for n in order):
            return {name: CategoricalDistribution(choices[name]) for name in order}
        trials = [t for t in study.get_trials(deepcopy=False) if t.distributions]
        if not trials:
            return None
        first = min(trials, key=lambda t: t.number)
        order = order or list(first.distributions)
        if not all(name in first.distributions for name in order):
            return None
        return {name: first.distributions[name] for name in order}

    def _round_sizes(self, blocks: list[list[str]], space: dict[str, CategoricalDistribution]
                     ) -> tuple[list[int], list[int]]:
        """The number of trials of each round: of the first pass, and of every later pass."""
        def choices(block: list[str]) -> int:
            return int(np.prod([len(space[n].choices) for n in block]))

        first, configs = [choices(blocks[0])], choices(blocks[0])
        parents = min(self.k, configs)
        for block in blocks[1:]:
            configs = min(self.k, parents * choices(block))
            first.append(configs)
            parents = configs
        later = []
        for block in blocks:
            configs = min(self.k, parents * choices(block))
            later.append(configs)
            parents = configs
        return first, later

    def _round_of(self, number: int, sizes: tuple[list[int], list[int]]
                  ) -> tuple[int, int, int, int, int]:
        """(round, its first trial number, its level, its size, the previous round's size)."""
        first, later = sizes
        rounds = first + later
        start, index, previous = 0, 0, 0
        while True:
            size = rounds[index] if index < len(rounds) else later[index % len(later)]
            if number < start + size:
                return index, start, index % len(later), size, previous
            start, index, previous = start + size, index + 1, size

    # ---- Optuna's sampler interface ----------------------------------------------------------
    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial
                                    ) -> dict[str, BaseDistribution]:
        space = self._space(study)
        if space is None or not all(isinstance(d, CategoricalDistribution)
                                    for d in space.values()):
            return {}  # the first trial: its parameters define the space and its order
        return dict(space)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        blocks = blocks_of(list(search_space))
        round_index, start, level, size, previous = self._round_of(
            trial.number, self._round_sizes(blocks, search_space))
        plan = self._plan(study, search_space, blocks, round_index, start, level, size,
                          previous)
        config = dict(plan[trial.number - start])
        rng = np.random.default_rng([self.seed, trial.number])
        for name, dist in search_space.items():  # later blocks: a uniform completion
            if name not in config:
                config[name] = dist.choices[rng.integers(len(dist.choices))]
        return config


    # ---- one round's configurations ----------------------------------------------------------
    def _plan(self, study: optuna.Study, space: dict[str, CategoricalDistribution],
              blocks: list[list[str]], round_index: int, start: int, level: int, size: int,
              previous_size: int) -> list[dict[str, Any]]:
        key = (round_index, tuple(space))
        if key in self._plans:
            return self._plans[key]
        rng = np.random.default_rng([self.seed, round_index])
        parents = self._parents(study, space, blocks, round_index, start, level, previous_size)
        candidates: list[dict[str, Any]] = []
        for parent in parents:
            for values in _product([space[n].choices for n in blocks[level]]):
                candidate = {**parent, **dict(zip(blocks[level], values))}
                if candidate not in candidates:
                    candidates.append(candidate)
        done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.number < start]
        if round_index == 0 or len(candidates) <= size or not done:
            chosen = list(range(len(candidates)))  # the first round evaluates every candidate
        else:
            chosen = sample_k(self._predict(study, space, done, candidates, round_index),
                              size, self._temperature(round_index), rng)
        plan = [candidates[i] for i in chosen]
        # Rounds have a fixed size (trial numbers place a trial in its round). Where parents
        # coincided (the very first trial is drawn before the space is known), the round's
        # configurations repeat in turn.
        plan = [plan[i % len(plan)] for i in range(size)]
        if all(t.state.is_finished() for t in study.get_trials(deepcopy=False)
               if t.number < start):
            # Settled: the same for every later call. Workers sharing a study may ask a round's
            # first trial while the previous round still runs; their plan is rebuilt later.
            self._plans[key] = plan
        return plan

    def _temperature(self, round_index: int) -> float:
        return temperature(round_index, self.t0, self.tf, self.sigma)

    def _parents(self, study: optuna.Study, space: dict[str, CategoricalDistribution],
                 blocks: list[list[str]], round_index: int, start: int, level: int,
                 previous_size: int) -> list[dict[str, Any]]:
        """The configurations the round expands: the previous round's, read from its trials
        (K of them, drawn by measured scores, when the first round evaluated more)."""
        if round_index == 0:
            return [{}]
        first_pass = round_index < len(blocks)
        names = [n for block in blocks[:level] for n in block] if first_pass else list(space)
        # A pruned trial was a proposal rejected unscored (`nas.search.constraints`): the round
        # never evaluated its configuration, so it is no parent.
        trials = sorted((t for t in study.get_trials(deepcopy=False)
                         if start - previous_size <= t.number < start
                         and t.state != TrialState.PRUNED),
                        key=lambda t: t.number)
        parents: list[dict[str, Any]] = []
        for t in trials:
            config = {n: t.params[n] for n in names if n in t.params}
            if len(config) == len(names) and config not in parents:
                parents.append(config)
        if round_index == 1 and len(parents) > self.k:
            sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
            scores = {tuple(sorted((n, str(v)) for n, v in
                                   {n: t.params[n] for n in names}.items())): sign * t.value
                      for t in trials if t.state == TrialState.COMPLETE}
            measured = np.array([scores.get(tuple(sorted((n, str(v)) for n, v in p.items())),
                                            np.nan) for p in parents])
            if not np.isnan(measured).any():
                rng = np.random.default_rng([self.seed, round_index, 1])
                chosen = sample_k(_positive(measured, measured), self.k,
                                  self._temperature(0), rng)
                parents = [parents[i] for i in chosen]
            else:
                parents = parents[:self.k]
        return parents or [{}]

    def _predict(self, study: optuna.Study, space: dict[str, CategoricalDistribution],
                 done: list[FrozenTrial], candidates: list[dict[str, Any]],
                 round_index: int) -> np.ndarray:
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        names = list(space)
        configs, scores = [], []
        for t in sorted(done, key=lambda t: t.number):
            for length in range(1, len(names) + 1):
                configs.append({n: t.params[n] for n in names[:length]})
                scores.append(sign * float(t.value))
        surrogate = Surrogate(space, seed=zlib.crc32(f"{self.seed}/{round_index}".encode()))
        surrogate.fit(configs, scores)
        return _positive(surrogate.predict(candidates), np.array(scores))


def _positive(values: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """p ~ score needs positive scores: accuracies are; other scores are shifted so that the
    worst seen scores just above zero."""
    floor = float(seen.min())
    if floor <= 0:
        values = values - floor + 1e-3 * (float(seen.max()) - floor + 1e-12)
    return np.clip(values, 1e-12, None)


def _product(choice_lists: list[Sequence[Any]]) -> list[tuple]:
    combos: list[tuple] = [()]
    for choices in choice_lists:
        combos = [c + (value,) for c in combos for value in choices]
    return combos


def epnas(seed: int, constraints_func: ConstraintsFunc | None = None) -> optuna.samplers.BaseSampler:
    return EPNAS(seed=seed)  # constraints: rejection alone (PRUNED: no parent, no training row)
