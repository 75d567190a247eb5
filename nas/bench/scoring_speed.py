"""Architectures scored per second: prepared scoring data ÷ the naive path it replaced, on the
same supernet and architectures, in one run (goal >= 5).

Scoring an architecture (`TrainingMethod.score`, SPOS, BatchNorm recalibration): recompute every
BatchNorm's statistics from `calibration_batches` batches of un-augmented training images, then
top-1 accuracy over the search-validation images. The naive path is the code before
`nas.data.PreparedBatches`, kept here as the baseline: `BatchSource` batches gathered and
normalised anew on every scoring, evaluation in the source's batches of 256 NCHW images under
`no_grad`, the correct count read (`int`) after every batch. The fast path is what searchers run:
`method.score` on `SearchProblem.scoring_data()`, prepared once per problem (the one-off cost is
in the row's detail), evaluated in the batches and layout `prepare_scoring_data` picks. Paths alternate architecture by architecture, the first of each pair
swapped every time, so drifts in machine load hit both; both halves of a score (recalibration,
evaluation) are timed apart.

The supernet is trained for `train_steps` SPOS steps first, so that BatchNorm statistics and
predictions are not those of random weights, and both paths' scores are compared: the detail
says on how many architectures they are equal. Images: `data` (as `--data` reads it) or random
CIFAR-shaped uint8 ones; timing does not depend on pixel values. CPU, the process's threads.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np
import torch

from nas.bench.rows import make_row
from nas.bench.skeletons import describe, random_images
from nas.config import SpaceConfig
from nas.data import DataConfig, load_data, make_splits
from nas.data.datasets import ImageData
from nas.problem import SearchProblem
from search_spaces import Skeleton, get_space
from supernets import METHODS, TrainConfig, accuracy, train
from supernets.evaluation import _batchnorm_mode, batchnorms

FIGURE = "architectures scored per second, fast / naive"
GOAL = ">= 5"


@dataclass(frozen=True)
class ScoringBench:
    # NB201 at the width and depth of the ranking protocol's CIFAR runs; DARTS at its search
    # skeleton (C=16, 3 cells), the space's default.
    spaces: tuple[SpaceConfig, ...] = (SpaceConfig("nb201", width=8, cells=1),
                                       SpaceConfig("darts"))
    val_images: int = 10_000   # the ranking protocol's search-validation set
    train_images: int = 5_000  # calibration and the warm-up training draw from these
    image_size: int = 16       # random images: CIFAR-10 at 16x16 (cifar10_16.npz)
    archs: int = 6             # the same random architectures for both paths
    repeats: int = 1           # each architecture scored this many times by each path
    train_steps: int = 40      # SPOS steps before timing
    seed: int = 0


# Seconds, for tests: the spaces at width 4 on 8x8 images (`nas.bench.skeletons`).
QUICK = ScoringBench(spaces=(SpaceConfig("nb201", width=4, cells=1),
                             SpaceConfig("darts", width=4, cells=3)),
                     val_images=1_000, train_images=1_000, image_size=8, archs=2, train_steps=2)


def _naive_recalibrate(module, forward, batches, num_batches: int) -> None:
    """`supernets.evaluation.recalibrate_batchnorm` as it was."""
    layers = batchnorms(module)
    for bn in layers:
        bn.reset_running_stats()
    with torch.no_grad(), _batchnorm_mode(module, layers, is_training=True, momentum=None):
        for i, (images, *_rest) in enumerate(batches):
            if i >= num_batches:
                break
            forward(images)


def _naive_accuracy(module, forward, batches) -> float:
    """`supernets.evaluation.accuracy` (running statistics) as it was: a read per batch."""
    correct = total = 0
    with torch.no_grad(), _batchnorm_mode(module, [], is_training=False, momentum=0.0):
        for images, labels, *_rest in batches:
            correct += int((forward(images).argmax(dim=1) == labels).sum())
            total += len(labels)
    return 100.0 * correct / max(total, 1)


def _naive_score(method, supernet, arch, problem: SearchProblem) -> tuple[float, float, float]:
    """(accuracy, recalibration s, evaluation s) the naive way."""
    forward = lambda x: supernet(x, arch)  # noqa: E731
    start = time.perf_counter()
    _naive_recalibrate(supernet, forward, problem.splits.calibration.epoch(0),
                       method.config.calibration_batches)
    middle = time.perf_counter()
    score = _naive_accuracy(supernet, forward, problem.splits.val.epoch(0))
    return score, middle - start, time.perf_counter() - middle


def _fast_score(method, supernet, arch, problem: SearchProblem) -> tuple[float, float, float]:
    """(accuracy, recalibration s, evaluation s) as `TrainingMethod.score` takes them in
    "recalibrate" mode, on the problem's prepared scoring data."""
    data = problem.scoring_data()
    start = time.perf_counter()
    method.calibrate(supernet, arch, data)
    middle = time.perf_counter()
    score = accuracy(supernet, lambda x: supernet(x, arch), data.per_image_batches())
    return score, middle - start, time.perf_counter() - middle


def _problem(config: SpaceConfig, images: ImageData, bench: ScoringBench) -> SearchProblem:
    skeleton = Skeleton(images.in_channels, images.num_classes, images.image_size,
                        width=config.width, cells=config.cells)
    splits = make_splits(images, DataConfig(train_subset=bench.train_images,
                                            val_images=bench.val_images), bench.seed, "cpu")
    return SearchProblem(get_space(config.name, skeleton), splits, "cpu")


def _trained_supernet(problem: SearchProblem, bench: ScoringBench):
    method = METHODS.get("spos")(problem.space, seed=bench.seed)
    torch.manual_seed(bench.seed)
    supernet = method.build_supernet()
    train(supernet, method, problem.splits.train,
          TrainConfig(steps=bench.train_steps, checkpoint_every_steps=0, device="cpu"),
          description=f"bench scoring: train {problem.space.name}")
    return method, supernet


def _preparation_s(problem: SearchProblem, method) -> float:
    """Seconds to prepare what scoring reads (the one-off cost, kept out of the rates)."""
    start = time.perf_counter()
    data = problem.scoring_data()
    for source, batches in ((data.calibration, method.config.calibration_batches),
                            (data.per_image_evaluation, None)):
        for _ in itertools.islice(source.epoch(0), batches):
            pass  # reading a batch prepares it
    return time.perf_counter() - start


def _interleaved(problem: SearchProblem, method, supernet, archs: list, repeats: int
                 ) -> tuple[dict[str, np.ndarray], dict[str, list[float]]]:
    """Per path, total (recalibration s, evaluation s) and the scores, paths alternating."""
    paths = {"naive": _naive_score, "fast": _fast_score}
    for path in paths.values():
        path(method, supernet, archs[0], problem)  # warm-up
    seconds = {name: np.zeros(2) for name in paths}
    scores: dict[str, list[float]] = {name: [] for name in paths}
    for turn, arch in enumerate(itertools.chain.from_iterable([archs] * repeats)):
        for name in (("naive", "fast") if turn % 2 == 0 else ("fast", "naive")):
            score, *halves = paths[name](method, supernet, arch, problem)
            seconds[name] += halves
            scores[name].append(score)
    return seconds, scores


def space_row(config: SpaceConfig, images: ImageData, bench: ScoringBench) -> dict:
    problem = _problem(config, images, bench)
    method, supernet = _trained_supernet(problem, bench)
    rng = np.random.default_rng(bench.seed)
    archs = [problem.space.sample(rng) for _ in range(bench.archs)]
    prepare_s = _preparation_s(problem, method)
    seconds, scores = _interleaved(problem, method, supernet, archs, bench.repeats)
    scored = bench.archs * bench.repeats
    ms = {name: [f"{1e3 * s / scored:.0f}" for s in total] for name, total in seconds.items()}
    equal = sum(a == b for a, b in zip(scores["naive"], scores["fast"]))
    per_image = problem.scoring_data().per_image_evaluation
    layout = " channels-last" if per_image.channels_last else ""
    detail = (f"{images.name}, {bench.val_images} val images; recalibration on "
              f"{method.config.calibration_batches} batches of "
              f"{problem.splits.calibration.batch_size}; evaluation in batches of "
              f"{problem.splits.val.batch_size} (naive) / {per_image.batch_size}{layout} (fast); "
              f"ms per arch, recalibration + evaluation: naive {' + '.join(ms['naive'])}, fast "
              f"{' + '.join(ms['fast'])}; preparing once {1e3 * prepare_s:.0f} ms; scores "
              f"equal on {equal}/{scored}; {describe(problem.space.skeleton)}, {bench.archs} "
              f"archs x {bench.repeats}, {bench.train_steps} SPOS steps; cpu, "
              f"{torch.get_num_threads()} threads")
    return make_row(FIGURE, config.name, scored / seconds["naive"].sum(),
                    scored / seconds["fast"].sum(), "archs/s", goal=GOAL, detail=detail)


def scoring_rows(quick: bool = False, data: str | None = None) -> list[dict]:
    """One row per space of `ScoringBench.spaces` (`QUICK` with `quick`), on `data`'s images
    or random ones."""
    bench = QUICK if quick else ScoringBench()
    images = (random_images(bench.train_images + bench.val_images, bench.image_size, bench.seed)
              if data is None else load_data(data))
    return [space_row(config, images, bench) for config in bench.spaces]
