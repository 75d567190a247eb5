"""Supernet-training heuristics measured against a recipe: the study behind `nas ablate`.

"How to Train Your Super-Net" (Yu, Ranftl, Salzmann; TPAMI 2021) isolated the heuristics of
supernet training one at a time and found that several common ones hurt the ranking; this
reruns that study on a user's own space, data and ground truth.

- **The baseline** is the recipe the command's own options describe. Each `--vary KEY=V1,V2`
  adds one variant per value that changes KEY alone (a value that gives the recipe's own
  settings is the baseline itself), and each `--combine K=V,K=V` one variant that changes all
  of them together. KEY is an option of the recipe's method (`--method-opt`), a training option
  (`TRAIN_KEYS`) or the batch size, or one of the short names in `ALIASES`; where a method
  owns an optimiser setting (the gradient methods' weight decay), the method's is varied.
- **Runs.** Every variant trains `seeds` supernets (seeds seed, seed+1, ...) for the recipe's
  budget in steps: equal steps, with each run's training seconds reported beside them for
  readings at equal time. Each run is a plain `nas supernet` run directory,
  `out/runs/<variant>-seed<k>`, resumed where it stopped; several processes started with the
  same command share the queue (a lock per run, freed when its holder dies), as
  `nas groundtruth`'s workers do. A run that fails (a diverged loss) is recorded in its
  directory (`ablation_failed.json`) and skipped, and the queue goes on.
- **Scores.** Every run scores the ground truth's architectures on the recipe's scoring data
  (so a batch-size variant changes how it trains, not the calibration batches it is scored
  with) by the supernet alone (the method's own score, its BatchNorm mode included) and by a
  search's default scorer over a trained supernet (`supernet+jacov+meco`, or `scorer`). The
  combination takes each part's quantile among the scored architectures themselves, a uniform
  sample of the space as a search's reference sample is: that spares scoring 100 more
  architectures with every supernet (as long again as protocol v2's 64). The proxies train
  nothing, so they are scored once, on the recipe's data, and shared by every variant.
- **Figures** (`nas.reports.ablation_report`): each variant's seed-mean Kendall tau and its
  difference from the baseline's, with the two-level paired bootstrap of
  `nas.ranking.comparison`, overall and within FLOPs terciles, beside the proxies' own tau and
  the ground truth's noise ceiling.
"""
from __future__ import annotations

import dataclasses
import json
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from nas.config import DataConfig, RunRecord, SpaceConfig, TrainConfig, replace_options
from nas.errors import ConfigError, NasError
from nas.problem import SearchProblem, build_problem
from nas.ranking.correlate import GroundTruth, choose_archs, read_ground_truth
from nas.runs import RunDir, atomic_write_csv, atomic_write_json, exclusive_lock, load_checkpoint
from nas.runs.run_dir import first_difference
from nas.scorers import ScorerSetting, build_scorer
from nas.scorers.combined import DEFAULT_WITH_SUPERNET, aggregate, quantile
from nas.scorers.supernet import SupernetScorer
from nas.training.supernet import (SUPERNET_FILE, SUPERNET_FORMAT, build_method,
                                   check_method_data, check_training, load_supernet,
                                   supernet_record, train_supernet_in)
from supernets import METHODS
from supernets.progress import Progress

BASELINE = "baseline"
DEFAULT_SEEDS = 3
STUDY_FILE = "ablation.json"              # the study's settings: a rerun must repeat them
SCORES_FILE = "ablation_scores.json"      # in each run directory, once it is scored
FAILED_FILE = "ablation_failed.json"      # in a run directory whose training or scoring failed
TRAIN_KEYS = ("lr", "lr_schedule", "warmup_epochs", "weight_decay", "grad_clip_norm", "momentum",
              "nesterov", "steps")
DATA_KEYS = ("batch_size",)
ALIASES = {"bn": "bn_mode", "wd": "weight_decay", "clip": "grad_clip_norm",
           "grad_clip": "grad_clip_norm", "batch": "batch_size", "warmup": "warmup_epochs",
           "schedule": "lr_schedule", "smoothing": "label_smoothing"}


@dataclass(frozen=True)
class Recipe:
    """The baseline: what `nas supernet` would train with the command's own options."""

    space: SpaceConfig
    data: DataConfig
    train: TrainConfig
    method: str
    method_options: Mapping[str, Any]

    def method_keys(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(METHODS.get(self.method).config_class))

    def keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.method_keys() + TRAIN_KEYS + DATA_KEYS))

    def record(self, changes: Sequence[tuple[str, str]], seed: int) -> RunRecord:
        """The run record of this recipe with `changes` made, trained with `seed`."""
        owned = self.method_keys()  # a method's own setting (its weight decay) is varied there
        train = replace_options(self.train, [c for c in changes if c[0] in TRAIN_KEYS
                                             and c[0] not in owned], "training option")
        data = replace_options(self.data, [c for c in changes if c[0] in DATA_KEYS], "data option")
        options = {**self.method_options, **{k: v for k, v in changes if k in owned}}
        return supernet_record("supernet", self.space, data, replace(train, seed=seed),
                               self.method, options)


@dataclass(frozen=True)
class Variant:
    """The recipe with some settings changed: (key, value) pairs, in the order given."""

    changes: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return "+".join(f"{k}={v}" for k, v in self.changes) or BASELINE

    @property
    def folder(self) -> str:
        return re.sub(r"[^A-Za-z0-9._=+-]", "_", self.name)


def _key(recipe: Recipe, text: str, option: str) -> str:
    key = text.strip().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in recipe.keys():
        raise ConfigError(f"{option}: unknown setting {text.strip()!r}; choose one of "
                          f"{', '.join(sorted(set(recipe.keys()) | set(ALIASES)))}")
    return key


def _changes(recipe: Recipe, text: str, option: str) -> tuple[str, list[str]]:
    key, sep, values = text.partition("=")
    values_list = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not values_list:
        raise ConfigError(f"{option} {text!r} must look like KEY=VALUE[,VALUE...], e.g. "
                          f"lr=0.025,0.1")
    return _key(recipe, key, option), values_list


def variants(recipe: Recipe, vary: Sequence[str], combine: Sequence[str]) -> list[Variant]:
    """The baseline, one variant per value of each `--vary`, one per `--combine`; every one
    checked now (an unknown setting or a value its config refuses fails before any training),
    and variants that train the same settings (`lr=0.1` and `lr=0.10`) refused."""
    found = [Variant()]
    for text in vary:
        key, values = _changes(recipe, text, "--vary")
        found += [Variant(((key, value),)) for value in values]
    for text in combine:
        pairs = []
        for part in text.split(","):
            if "=" not in part:
                raise ConfigError(f"--combine {text!r}: each comma-separated part is KEY=VALUE, "
                                  f"one value per setting, e.g. lr=0.1,bn_mode=batch-stats")
            key, values = _changes(recipe, part, "--combine")
            pairs.append((key, values[0]))
        found.append(Variant(tuple(pairs)))
    kept: dict[str, Variant] = {}
    for variant in found:
        settings = json.dumps(recipe.record(variant.changes, 0).to_dict(), sort_keys=True)
        if settings not in kept:
            kept[settings] = variant
        elif kept[settings] != Variant():
            raise ConfigError(f"variants {kept[settings].name} and {variant.name} train the same "
                              f"settings; give each once")
    return list(kept.values())  # a value giving the recipe's own settings is the baseline


@dataclass(frozen=True)
class Study:
    """One ablation: the recipe, its variants and seeds, the ground truth, where it all goes."""

    recipe: Recipe
    variants: tuple[Variant, ...]
    seeds: tuple[int, ...]
    ground_truth: str
    out: Path
    column: str | None = None
    archs_file: str | None = None
    sample: int = 100
    scorer: str = DEFAULT_WITH_SUPERNET
    device: str = "auto"
    command: str = ""

    def run_dir(self, variant: Variant, seed: int) -> Path:
        return self.out / "runs" / f"{variant.folder}-seed{seed}"

    def settings(self) -> dict[str, Any]:
        """What a rerun into the same folder must repeat (variants and seeds may grow)."""
        base = self.recipe.record((), 0).to_dict()
        base["train"].pop("seed")
        archs = str(Path(self.archs_file).resolve()) if self.archs_file else None
        return json.loads(json.dumps(
            {"recipe": base, "ground_truth": str(Path(self.ground_truth).resolve()),
             "column": self.column, "archs": archs, "sample": self.sample,
             "scorer": self.scorer}))

    @property
    def scorer_setting(self) -> ScorerSetting:
        setting = ScorerSetting.parse(self.scorer)
        if not setting.trains_supernet:
            raise ConfigError(f"--scorer {self.scorer} has no supernet part; an ablation "
                              f"measures supernets: give {DEFAULT_WITH_SUPERNET} or supernet")
        return setting


@dataclass
class Scoring:
    """What every run of a study is scored with and against, built once."""

    problem: SearchProblem          # the recipe's: its space, and the scoring data of every run
    truth: GroundTruth
    archs: list[str]
    proxies: pd.DataFrame = field(repr=False)  # arch + one column per part other than supernet


def _checked(study: Study) -> dict[tuple[str, int], RunRecord]:
    """Every run's record, its options and training checked before anything runs."""
    if study.recipe.train.time_budget_s is not None:
        raise ConfigError("nas ablate compares variants at equal steps; give --steps (or "
                          "--epochs), not --time-budget")
    study.scorer_setting  # noqa: B018 (an unusable scorer fails now)
    records, problems = {}, {}
    for variant in study.variants:
        for seed in study.seeds:
            record = study.recipe.record(variant.changes, seed)
            if record.data not in problems:
                problems[record.data] = build_problem(record.space, record.data, 0, study.device)
            problem = problems[record.data]
            check_method_data(build_method(record, problem.space), problem)
            check_training(record.train, problem, len(problem.splits.train))
            records[(variant.name, seed)] = record
    return records


def prepare(study: Study) -> Scoring:
    """The recipe's problem, the ground truth, the architectures, the proxies' scores."""
    problem = build_problem(study.recipe.space, study.recipe.data, 0, study.device)
    truth = read_ground_truth(study.ground_truth, problem.space, study.column)
    archs = choose_archs(truth, problem.space, study.archs_file, study.sample, 0)
    return Scoring(problem, truth, archs, _proxy_scores(study, problem, archs))


def run_study(study: Study) -> Scoring:
    """Train and score every (variant, seed) not done yet that no other process holds."""
    records = _checked(study)
    study.out.mkdir(parents=True, exist_ok=True)
    _open_study(study)
    scoring = prepare(study)
    queue = [(v, s) for s in study.seeds for v in study.variants]  # every variant's seed 0 first
    for number, (variant, seed) in enumerate(queue, 1):
        run = study.run_dir(variant, seed)
        if _is_done(run, scoring.archs):
            continue
        with exclusive_lock(study.out / ".locks" / f"{run.name}.lock", wait=False) as mine:
            if not mine:
                print(f"ablate: {run.name} is another process's; going on")
                continue
            if _is_done(run, scoring.archs):  # finished by another process since the check
                continue
            print(f"ablate: run {number}/{len(queue)}: {variant.name}, seed {seed}")
            try:
                _train(records[(variant.name, seed)], run)
                _score(run, scoring, study.device)
            except NasError as error:
                atomic_write_json(run / FAILED_FILE, {"error": str(error)})
                print(f"ablate: {run.name} failed and is left out: {error}")
    return scoring


def _open_study(study: Study) -> None:
    path = study.out / STUDY_FILE
    settings = study.settings()
    with exclusive_lock(study.out / ".locks" / "study.lock", wait=True):
        if path.exists():
            recorded = dict(json.loads(path.read_text())["settings"])
            # Settings the platform added since the study began are at their defaults there.
            recorded["recipe"] = RunRecord.upgrade(recorded["recipe"])
            now = {**settings, "recipe": RunRecord.upgrade(settings["recipe"])}
            key, old, new = first_difference(recorded, now)
            if key:
                raise ConfigError(f"{study.out} holds an ablation with {key} = {old!r}, not "
                                  f"{new!r}; rerun it with its recipe, ground truth and scorer, "
                                  f"or give another --out")
            return
        atomic_write_json(path, {"settings": settings, "command": study.command})


def _train(record: RunRecord, run: Path) -> None:
    problem = build_problem(record.space, record.data, record.train.seed, record.train.device)
    method = build_method(record, problem.space)
    run_dir = RunDir(run)
    run_dir.open(record)
    train_supernet_in(run_dir, record.train, method, problem)


def _score(run: Path, scoring: Scoring, device: str) -> None:
    trained = load_supernet(run, device)
    scorer = SupernetScorer(trained, scoring.problem.scoring_data())
    started = time.monotonic()
    with Progress(len(scoring.archs), desc=f"score {run.name}", unit="arch") as bar:
        scores = []
        for arch in scoring.archs:
            scores.append(float(scorer(scoring.problem.space.parse(arch))))
            bar.update(1)
    state = load_checkpoint(run / SUPERNET_FILE, SUPERNET_FORMAT)
    atomic_write_json(run / SCORES_FILE, {
        "archs": scoring.archs, "supernet": scores, "score_s": time.monotonic() - started,
        "train_s": float(state.get("elapsed_s", float("nan"))),
        "steps": int(state.get("steps_done", 0))})


def run_scores(run: Path, archs: list[str]) -> dict | None:
    """A run's scores of `archs`, or None when it has not scored them (yet)."""
    path = run / SCORES_FILE
    if not path.is_file():
        return None
    scored = json.loads(path.read_text())
    return scored if scored["archs"] == archs else None


def run_failure(run: Path) -> str | None:
    path = run / FAILED_FILE
    return json.loads(path.read_text())["error"] if path.is_file() else None


def _is_done(run: Path, archs: list[str]) -> bool:
    """Scored, or failed (delete its ablation_failed.json to try it again)."""
    return run_scores(run, archs) is not None or run_failure(run) is not None


def scored_runs(study: Study, archs: list[str]) -> Iterator[tuple[Variant, int, dict]]:
    for variant in study.variants:
        for seed in study.seeds:
            scored = run_scores(study.run_dir(variant, seed), archs)
            if scored is not None:
                yield variant, seed, scored


def _proxy_scores(study: Study, problem: SearchProblem, archs: list[str]) -> pd.DataFrame:
    """Every part of the scorer other than the supernet, on `archs`, scored once (proxies.csv)."""
    path = study.out / "proxies.csv"
    parts = [p for p in study.scorer_setting.parts if not p.trains_supernet]
    with exclusive_lock(study.out / ".locks" / "proxies.lock", wait=True):
        table = pd.read_csv(path) if path.is_file() else pd.DataFrame({"arch": archs})
        if table["arch"].tolist() != archs:
            table = pd.DataFrame({"arch": archs})
        for part in parts:
            if part.label in table.columns:
                continue
            scorer = build_scorer(part, problem, 0)
            with Progress(len(archs), desc=f"proxy {part.label}", unit="arch") as bar:
                values = []
                for arch in archs:
                    values.append(float(scorer(problem.space.parse(arch))))
                    bar.update(1)
            table[part.label] = values
            atomic_write_csv(path, table)
    return table


def combined_scores(parts: Mapping[str, np.ndarray], aggregation: str) -> np.ndarray:
    """The combination of `parts` (label -> rankable scores of the same architectures), each
    part's quantile taken among those architectures (module doc)."""
    references = {label: np.sort(values) for label, values in parts.items()}
    n = len(next(iter(parts.values())))
    return np.array([aggregate([quantile(references[label], float(parts[label][i]))
                                for label in parts], aggregation) for i in range(n)])
