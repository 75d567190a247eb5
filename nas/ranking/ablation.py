"""Supernet-training heuristics measured against a recipe: the study behind `nas ablate`.

"How to Train Your Super-Net" (Yu, Ranftl, Salzmann; TPAMI 2021) isolated the heuristics of
supernet training one at a time and found that several common ones hurt the ranking; this
reruns that study on a user's own space, data and ground truth.

- **The baseline** is the recipe the command's own options describe. Each `--vary KEY=V1,V2`
  adds one variant per value that changes KEY alone (a value equal to the recipe's is the
  baseline itself), and each `--combine K=V,K=V` one variant that changes all of them together.
  KEY is a training option (`TRAIN_KEYS`), the batch size, or an option of the recipe's method
  (`--method-opt`), or one of the short names in `ALIASES`.
- **Runs.** Every variant trains `seeds` supernets (seeds seed, seed+1, ...) for the recipe's
  budget: equal steps, with each run's training seconds reported beside them for readings at
  equal time. Each run is a plain `nas supernet` run directory, `out/runs/<variant>-seed<k>`,
  resumed where it stopped; several processes started with the same command share the queue
  (a lock per run, freed when its holder dies), as `nas groundtruth`'s workers do.
- **Scores.** Each run scores the ground truth's architectures with the supernet alone (the
  method's own score, its BatchNorm mode included) and with a search's default scorer over a
  trained supernet (`supernet+jacov+meco`, or `scorer`). The combination takes each part's
  quantile among the scored architectures themselves, a uniform sample of the space as a
  search's reference sample is: that spares scoring 100 more architectures with every supernet
  (as long again as the 64 of protocol v2). The proxies train nothing, so they are scored once,
  on the recipe's data, and shared by every variant.
- **Figures**: each variant's seed-mean Kendall tau and its difference from the baseline's,
  with the two-level paired bootstrap of `nas.ranking.comparison` (the same architectures for
  every variant, each variant's seeds resampled), overall and within FLOPs terciles (where a
  parameter count cannot help), beside the proxies' own tau and the ground truth's noise
  ceiling.
"""
from __future__ import annotations

import dataclasses
import json
import re
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from nas.config import DataConfig, MethodSetting, RunRecord, SpaceConfig, TrainConfig, replace_options
from nas.errors import ConfigError
from nas.problem import SearchProblem, build_problem
from nas.ranking.comparison import compare_with_baseline, mean_tau_resamples
from nas.ranking.correlate import GroundTruth, choose_archs, rankable_scores, read_ground_truth
from nas.ranking.metrics import (cost_bands, kendall_tau, percentile_interval, seed_to_seed_tau,
                                 within_band_tau)
from nas.runs import RunDir, atomic_write_csv, atomic_write_json, exclusive_lock, load_checkpoint
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
STUDY_FILE = "ablation.json"      # the study's settings: a rerun must repeat them
SCORES_FILE = "ablation_scores.json"  # in each run directory, once it is scored
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

    def keys(self) -> tuple[str, ...]:
        method_fields = tuple(f.name for f in dataclasses.fields(METHODS.get(self.method).config_class))
        return TRAIN_KEYS + DATA_KEYS + method_fields

    def value_of(self, key: str) -> Any:
        if key in TRAIN_KEYS:
            return getattr(self.train, key)
        if key in DATA_KEYS:
            return getattr(self.data, key)
        return getattr(MethodSetting.parse(self.method, dict(self.method_options)).options, key)

    def record(self, changes: Sequence[tuple[str, str]], seed: int) -> RunRecord:
        """The run record of this recipe with `changes` made, trained with `seed`."""
        train = replace_options(self.train, [c for c in changes if c[0] in TRAIN_KEYS],
                                "training option")
        data = replace_options(self.data, [c for c in changes if c[0] in DATA_KEYS], "data option")
        options = {**self.method_options,
                   **{k: v for k, v in changes if k not in TRAIN_KEYS + DATA_KEYS}}
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
    key = ALIASES.get(text.strip().replace("-", "_"), text.strip().replace("-", "_"))
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
    checked now (an unknown setting or a value its config refuses fails before any training)."""
    found = [Variant()]
    for text in vary:
        key, values = _changes(recipe, text, "--vary")
        for value in values:
            variant = Variant(((key, value),))
            if _is_baseline(recipe, variant):
                continue  # the recipe's own value: the baseline already
            found.append(variant)
    for text in combine:
        pairs = []
        for part in text.split(","):
            if "=" not in part:
                raise ConfigError(f"--combine {text!r}: each comma-separated part is KEY=VALUE, "
                                  f"one value per setting, e.g. lr=0.1,bn_mode=batch-stats")
            key, values = _changes(recipe, part, "--combine")
            pairs.append((key, values[0]))
        found.append(Variant(tuple(pairs)))
    names = [v.name for v in found]
    for variant in found:
        if names.count(variant.name) > 1:
            raise ConfigError(f"variant {variant.name} is asked for twice")
    return found


def _is_baseline(recipe: Recipe, variant: Variant) -> bool:
    record, base = recipe.record(variant.changes, 0), recipe.record((), 0)
    return record.to_dict() == base.to_dict()


@dataclass(frozen=True)
class Study:
    recipe: Recipe
    variants: list[Variant]
    seeds: list[int]
    ground_truth: str
    column: str | None
    archs_file: str | None
    sample: int
    scorer: str
    out: Path
    device: str
    command: str = ""

    def run_dir(self, variant: Variant, seed: int) -> Path:
        return self.out / "runs" / f"{variant.folder}-seed{seed}"

    def settings(self) -> dict[str, Any]:
        """What a rerun into the same folder must repeat (variants and seeds may grow)."""
        base = self.recipe.record((), self.recipe.train.seed).to_dict()
        base["train"].pop("seed")
        return {"recipe": base, "ground_truth": str(Path(self.ground_truth).resolve()),
                "column": self.column, "archs": self.archs_file and str(Path(self.archs_file).resolve()),
                "sample": self.sample, "scorer": self.scorer}


def _checked(study: Study) -> dict[tuple[str, int], RunRecord]:
    """Every run's record, its options and training checked before anything runs."""
    setting = ScorerSetting.parse(study.scorer)
    if not setting.trains_supernet:
        raise ConfigError(f"--scorer {study.scorer} has no supernet part; the ablation measures "
                          f"supernets: give e.g. {DEFAULT_WITH_SUPERNET} or supernet")
    records, problems = {}, {}
    for variant in study.variants:
        for seed in study.seeds:
            record = study.recipe.record(variant.changes, seed)
            if record.data not in problems:
                problems[record.data] = build_problem(record.space, record.data, 0, study.device)
            problem = problems[record.data]
            method = build_method(record, problem.space)
            check_method_data(method, problem)
            check_training(record.train, problem, len(problem.splits.train))
            records[(variant.name, seed)] = record
    return records


def run_study(study: Study) -> dict:
    """Train and score every (variant, seed) not done yet that no other process holds, then
    write the report of everything scored so far (module doc)."""
    records = _checked(study)
    study.out.mkdir(parents=True, exist_ok=True)
    _open_study(study)
    problem = build_problem(study.recipe.space, study.recipe.data, 0, study.device)
    truth = read_ground_truth(study.ground_truth, problem.space, study.column)
    archs = choose_archs(truth, problem.space, study.archs_file, study.sample, 0)
    proxies = _proxy_scores(study, problem, archs)
    queue = [(v, s) for s in study.seeds for v in study.variants]  # every variant's seed 0 first
    for number, (variant, seed) in enumerate(queue, 1):
        run = study.run_dir(variant, seed)
        if _scores(run, archs) is not None:
            continue
        with exclusive_lock(study.out / ".locks" / f"{run.name}.lock", wait=False) as mine:
            if not mine:
                print(f"ablate: {run.name} is another process's; going on")
                continue
            print(f"ablate: run {number}/{len(queue)}: {variant.name}, seed {seed}")
            _train(records[(variant.name, seed)], run)
            _score(run, archs, study.device)
    return write_report(study, truth, archs, proxies)


def _open_study(study: Study) -> None:
    path = study.out / STUDY_FILE
    settings = json.loads(json.dumps(study.settings()))
    if path.exists():
        recorded = dict(json.loads(path.read_text())["settings"])
        # Settings the platform added since the study began are at their defaults there.
        recorded["recipe"] = RunRecord.upgrade(recorded["recipe"])
        settings["recipe"] = RunRecord.upgrade(settings["recipe"])
        differing = [k for k in settings if recorded.get(k) != settings[k]]
        if differing:
            raise ConfigError(f"{study.out} holds an ablation with another {differing[0]}; rerun "
                              f"it with the same recipe, ground truth and scorer, or give "
                              f"another --out")
    atomic_write_json(path, {"settings": study.settings(), "command": study.command})


def _train(record: RunRecord, run: Path) -> None:
    problem = build_problem(record.space, record.data, record.train.seed, record.train.device)
    method = build_method(record, problem.space)
    run_dir = RunDir(run)
    run_dir.open(record)
    train_supernet_in(run_dir, record.train, method, problem)


def _score(run: Path, archs: list[str], device: str) -> None:
    trained = load_supernet(run, device)
    scorer = SupernetScorer(trained)
    started = time.monotonic()
    with Progress(len(archs), desc=f"score {run.name}", unit="arch") as bar:
        scores = []
        for arch in archs:
            scores.append(float(scorer(trained.problem.space.parse(arch))))
            bar.update(1)
    state = load_checkpoint(run / SUPERNET_FILE, SUPERNET_FORMAT)
    atomic_write_json(run / SCORES_FILE, {
        "archs": archs, "supernet": scores, "score_s": time.monotonic() - started,
        "train_s": float(state.get("elapsed_s", float("nan"))),
        "steps": int(state.get("steps_done", 0))})


def _scores(run: Path, archs: list[str]) -> dict | None:
    """A run's scores of `archs`, or None when it has not scored them (yet)."""
    path = run / SCORES_FILE
    if not path.is_file():
        return None
    scored = json.loads(path.read_text())
    return scored if scored["archs"] == archs else None


def _proxy_scores(study: Study, problem: SearchProblem, archs: list[str]) -> pd.DataFrame:
    """Every part of the scorer other than the supernet, on `archs`, scored once (proxies.csv)."""
    path = study.out / "proxies.csv"
    parts = [p for p in ScorerSetting.parse(study.scorer).parts if not p.trains_supernet]
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
    """The combination of `parts` (label -> scores of the same architectures), each part's
    quantile taken among those architectures (module doc)."""
    references = {label: np.sort(np.where(np.isnan(v), -np.inf, v)) for label, v in parts.items()}
    n = len(next(iter(parts.values())))
    return np.array([aggregate([quantile(references[label], float(parts[label][i]))
                                for label in parts], aggregation) for i in range(n)])


def within_band_comparison(scores: Mapping[str, np.ndarray], truth: np.ndarray,
                           cost: np.ndarray, baseline: str, *, resamples: int = 2000,
                           seed: int = 0) -> dict[str, dict[str, float]]:
    """`compare_with_baseline` for the seed-mean tau within cost bands: the two-level paired
    bootstrap run inside each band (the same architectures for every variant), averaged over
    the bands."""
    bands = [b for b in cost_bands(cost) if b.size >= 2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample with a constant band
        draws = [mean_tau_resamples({k: v[:, band] for k, v in scores.items()}, truth[band],
                                    resamples=resamples, seed=seed + i)
                 for i, band in enumerate(bands)]
        per_variant = {k: np.nanmean([d[k] for d in draws], axis=0) for k in scores}
    observed = {k: float(np.mean([within_band_tau(row, truth, cost) for row in v]))
                for k, v in scores.items()}
    table = {}
    for name in scores:
        low, high = percentile_interval(per_variant[name])
        row = {"mean_tau": observed[name], "low": low, "high": high,
               "difference": observed[name] - observed[baseline]}
        if name != baseline:
            difference = per_variant[name] - per_variant[baseline]
            row["difference_low"], row["difference_high"] = percentile_interval(difference)
            row["verdict"] = ("better" if row["difference_low"] > 0 else
                              "worse" if row["difference_high"] < 0 else "no clear difference")
        table[name] = row
    return table


def write_report(study: Study, truth: GroundTruth, archs: list[str],
                 proxies: pd.DataFrame) -> dict:
    """runs.csv (a row per run), ablation.csv (a row per variant and scorer), ablation.md and
    ablation.png, from every run scored so far."""
    from nas.reports.ablation_report import write_figures

    setting = ScorerSetting.parse(study.scorer)
    space = build_problem(study.recipe.space, study.recipe.data, 0, "cpu").space
    targets = truth.accuracy.loc[archs].to_numpy(dtype=float)
    flops = np.array([space.flops_m(space.parse(a)) for a in archs])
    label = setting.label
    runs, by_variant = [], {}
    for variant in study.variants:
        for seed in study.seeds:
            scored = _scores(study.run_dir(variant, seed), archs)
            if scored is None:
                continue
            supernet = rankable_scores(np.array(scored["supernet"]), archs)
            parts = {p.label: (supernet if p.trains_supernet
                               else rankable_scores(proxies[p.label].to_numpy(float), archs))
                     for p in setting.parts}
            combined = combined_scores(parts, setting.aggregation)
            by_variant.setdefault(variant.name, {"supernet": [], label: []})
            by_variant[variant.name]["supernet"].append(supernet)
            by_variant[variant.name][label].append(combined)
            runs.append({"variant": variant.name, "seed": seed,
                         "run": str(study.run_dir(variant, seed)), "steps": scored["steps"],
                         "train_s": scored["train_s"], "score_s": scored["score_s"],
                         "tau_supernet": kendall_tau(supernet, targets),
                         "tau_supernet_within_flops_terciles": within_band_tau(supernet, targets, flops),
                         f"tau_{label}": kendall_tau(combined, targets),
                         f"tau_{label}_within_flops_terciles": within_band_tau(combined, targets, flops)})
    run_table = pd.DataFrame(runs)
    atomic_write_csv(study.out / "runs.csv", run_table)
    report = {"runs": len(runs), "expected_runs": len(study.variants) * len(study.seeds),
              "architectures": len(archs), "scorer": str(setting),
              "proxies": {p.label: kendall_tau(rankable_scores(proxies[p.label].to_numpy(float), archs), targets)
                          for p in setting.parts if not p.trains_supernet}}
    if truth.by_seed is not None and truth.by_seed.shape[1] >= 2:
        report["noise_ceiling_kendall_tau"] = seed_to_seed_tau(
            truth.by_seed.loc[archs].dropna().to_numpy().T)
    if BASELINE not in by_variant:
        report["rows"] = []
        print(f"ablate: {len(runs)} of {report['expected_runs']} runs scored; the baseline has "
              f"none yet, so nothing is compared")
        return report
    rows = []
    for scorer_name in ("supernet", label):
        scores = {name: np.stack(v[scorer_name]) for name, v in by_variant.items()}
        overall = compare_with_baseline(scores, targets, BASELINE)
        within = within_band_comparison(scores, targets, flops, BASELINE)
        for name in scores:
            seconds = run_table.loc[run_table["variant"] == name, "train_s"]
            rows.append({"variant": name, "scorer": scorer_name, "seeds": len(scores[name]),
                         "train_s": float(seconds.mean()),
                         **{k: overall[name].get(k, np.nan) for k in _FIGURES},
                         **{f"within_{k}": within[name].get(k, np.nan) for k in _FIGURES}})
    table = pd.DataFrame(rows)
    atomic_write_csv(study.out / "ablation.csv", table)
    report["rows"] = rows
    write_figures(study, table, report)
    return report


_FIGURES = ("mean_tau", "low", "high", "difference", "difference_low", "difference_high",
            "verdict")
