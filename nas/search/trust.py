"""How far a search's ranking can be trusted, told with the search, and an audit that checks it.

A supernet search ends with a ranking by inherited weights, and a user needs to know what it is
worth before spending anything on the winner. Two checks come free with every search
(`trust.json`):

- **Score noise.** The best architectures are scored again with a second, independent draw of
  the scorer's random parts (`Scorer.redrawn`; for the supernet: other BatchNorm calibration
  images for recalibrating methods, other evaluation batches for batch-statistics methods). If the best leads the runner-up by less than
  the scores move between draws, the supernet cannot tell them apart.
- **Size bias.** Kendall tau between the supernet's scores and parameter counts over all
  trials. Counting parameters is the cheapest ranking there is; a supernet whose scores follow
  it closely (tau near 1) adds little to it, one that ranks against it (tau < 0) prefers small
  networks, as an under-trained single-path supernet does.

`--audit K` measures what these only hint at: it trains the K best architectures of the search
and K drawn uniformly from the space stand-alone (the `nas train` budget, on the training and
search-validation images), scores each on the test split, which the search never saw, and
reports whether the one found beats the random ones (`audit.csv`). Each training is its own
run under `audit/`, named by architecture and epochs, so it resumes and is reused.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from nas.config import RunRecord
from nas.errors import ConfigError
from nas.problem import SearchProblem
from nas.ranking import kendall_tau
from nas.ranking.groundtruth import sample_architectures
from nas.runs import RunDir, atomic_write_csv, atomic_write_json
from nas.scorers import Scorer
from nas.training.standalone import check_standalone_training, train_model
from supernets import TrainConfig
from supernets.progress import Progress

TRUST_FILE = "trust.json"
AUDIT_FILE = "audit.csv"
AUDIT_DIR = "audit"
NOISE_TOP = 10  # how many of the best are scored twice


@dataclass(frozen=True)
class Trust:
    trials: int               # distinct architectures scored
    best_margin: float        # best score minus the runner-up's (points)
    score_noise: float        # mean |score - rescore| over the top architectures (points)
    top_rescored: int         # how many were scored twice
    best_stays_best: bool     # the best is still the best of them under the second draw
    params_tau: float         # Kendall tau of scores against parameter counts, all trials
    # A combination's parts: per part, the share of the shortlist (the top NOISE_TOP) that lies
    # in that part's own top quarter of all trials ({} for a single scorer).
    part_agreement: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        verdict = ("clear of the noise" if self.best_margin > self.score_noise
                   else "within the noise: the scorer cannot separate the top architectures")
        stays = "stays" if self.best_stays_best else "does not stay"
        bias = ("follows model size" if self.params_tau > 0.7 else
                "prefers smaller networks" if self.params_tau < -0.3 else
                "is not just model size")
        # A combined score is a sum of log quantiles, not an accuracy in points.
        unit = " (combined score)" if self.part_agreement else " points"
        return [f"  trust: the best leads the runner-up by {self.best_margin:.2f}{unit}; scores "
                f"move by {self.score_noise:.2f} between two draws of the scoring data "
                f"(top {self.top_rescored}), so the lead is {verdict}; the best {stays} the best "
                f"under the second draw",
                f"  trust: Kendall tau of the scores against parameter count "
                f"{self.params_tau:+.2f} over {self.trials} architectures (the ranking {bias})",
                *self._part_lines()]

    def _part_lines(self) -> list[str]:
        if not self.part_agreement:
            return []
        agreeing = [p for p, share in self.part_agreement.items() if share >= 0.5]
        verdict = ("no part agrees with it: the parts pull apart" if not agreeing else
                   f"it rests on one signal, {agreeing[0]}" if len(agreeing) == 1 else
                   f"{len(agreeing)} of the {len(self.part_agreement)} parts agree")
        shares = ", ".join(f"{p} {share:.0%}" for p, share in self.part_agreement.items())
        return [f"  trust: of the top {self.top_rescored}, the share each part ranks in its own "
                f"top quarter: {shares}; {verdict}"]


def distinct(trials: pd.DataFrame, column: str) -> pd.DataFrame:
    """The trials best first, each architecture once: a searcher may propose one twice, and
    its repeats (scored once, from the cache) must not count as runners-up or as more data."""
    ranked = trials.sort_values([column, "trial"], ascending=[False, True])
    return ranked.drop_duplicates("arch").reset_index(drop=True)


def assess(run: RunDir, problem: SearchProblem, scorer: Scorer, trials: pd.DataFrame
           ) -> Trust | None:
    """Score noise and size bias of a finished search (module doc); writes trust.json. None
    when the scorer has no random parts to draw again (a table, a seeded proxy)."""
    second_draw = scorer.redrawn()
    if second_draw is None:
        return None
    column = scorer.column
    trials = distinct(trials, column)
    if len(trials) < 2:
        raise ConfigError("judging a ranking needs at least 2 distinct architectures; search "
                          "with more --trials")
    top = trials.head(NOISE_TOP)
    rescored = np.array([second_draw(problem.space.parse(a)) for a in top["arch"]])
    first = top[column].to_numpy(dtype=float)
    scores = trials[column].to_numpy(dtype=float)
    params = trials["params_m"].to_numpy(dtype=float)
    size_tau = kendall_tau(scores, params) if np.ptp(scores) > 0 and np.ptp(params) > 0 else 0.0
    trust = Trust(trials=len(trials), best_margin=float(first[0] - first[1]),
                  score_noise=float(np.mean(np.abs(first - rescored))),
                  top_rescored=len(top), best_stays_best=bool(rescored[0] >= rescored.max()),
                  params_tau=float(size_tau), part_agreement=part_agreement(trials, len(top)))
    atomic_write_json(run / TRUST_FILE, {**asdict(trust), "top": top["arch"].tolist(),
                                         "scores": first.tolist(), "rescores": rescored.tolist()})
    return trust


def part_agreement(trials: pd.DataFrame, top: int) -> dict[str, float]:
    """For each part of a combined score (a column with a `_quantile` twin), the share of the
    `top` best trials that are in the part's own top quarter of `trials` (distinct, best
    first): whether the shortlist rests on all parts or on one."""
    parts = [c.removesuffix("_quantile") for c in trials.columns if c.endswith("_quantile")]
    shares = {}
    for part in parts:
        values = trials[part].to_numpy(dtype=float)
        cut = np.quantile(np.where(np.isnan(values), -np.inf, values), 0.75)
        shares[part] = float(np.mean(values[:top] >= cut))
    return shares


@dataclass(frozen=True)
class Audit:
    table: pd.DataFrame  # one row per trained architecture
    test_images: int     # the test split's size: one image is 100 / test_images points

    def summary(self) -> dict[str, float]:
        short = self.table[self.table.group == "shortlist"].test_accuracy
        rand = self.table[self.table.group == "random"].test_accuracy
        found = float(short.iloc[0])
        return {"found": found, "shortlist": len(short), "shortlist_mean": float(short.mean()),
                "random": len(rand), "random_mean": float(rand.mean()),
                "random_best": float(rand.max()), "beaten": int((rand < found).sum()),
                "tied": int((rand == found).sum())}

    def lines(self) -> list[str]:
        s = self.summary()
        n, beaten, tied = s["random"], s["beaten"], s["tied"]
        verdict = ("beats every random one" if beaten == n else
                   "beats none of the random ones" if beaten == 0 else
                   f"beats {beaten} of the {n} random ones")
        if tied:
            verdict += f" and ties {tied}"
        return [f"  audit (stand-alone test accuracy): found {s['found']:.2f}%, its shortlist of "
                f"{s['shortlist']} {s['shortlist_mean']:.2f}% on average, {n} random "
                f"architectures {s['random_mean']:.2f}% (best {s['random_best']:.2f}%): the found "
                f"one {verdict} (one test image is {100 / self.test_images:.2f} points; one "
                f"training seed each)"]


def audit(run: RunDir, problem: SearchProblem, scorer: Scorer, trials: pd.DataFrame, k: int,
          config: TrainConfig) -> Audit:
    """Train the K best of `trials` and K uniformly drawn architectures stand-alone with
    `config` (module doc), each beside the search's score of it; writes audit.csv after each
    one, and resumes."""
    if k < 1:
        raise ConfigError(f"--audit takes the number of architectures per group (>= 1), got {k}")
    column = scorer.column
    check_standalone_training(config, problem)
    shortlist = [problem.space.parse(a) for a in distinct(trials, column)["arch"].head(k)]
    # Random architectures are drawn apart from the search's own RNG, and never the shortlist's.
    taken = {str(a) for a in shortlist}
    drawn = [a for a in sample_architectures(problem.space, min(problem.space.size(), k + len(taken)),
                                             config.seed + 7919) if str(a) not in taken][:k]
    if not shortlist or not drawn:
        raise ConfigError(f"an audit compares the search's best with random architectures, but "
                          f"{problem.space.name} has no architecture outside the shortlist; "
                          f"audit a larger space or fewer (--audit)")
    plan = [("shortlist", i, a) for i, a in enumerate(shortlist)] + \
           [("random", i, a) for i, a in enumerate(drawn)]
    scores = dict(zip(trials["arch"], trials[column]))
    rows = []
    with Progress(len(plan), desc="audit", unit="model") as bar:
        for group, index, arch in plan:
            # Named by what is trained, so a changed K or --audit-epochs reuses what it can.
            name = hashlib.sha1(f"{arch}|{config.epochs}".encode()).hexdigest()[:12]
            sub = RunDir(run / AUDIT_DIR / f"{name}-e{config.epochs}")
            sub.open(RunRecord("train", train=config, arch=str(arch)))
            _, metrics = train_model(sub, arch, problem, config)
            search_score = scores.get(str(arch))
            if search_score is None:
                search_score = scorer(arch)
            rows.append({"group": group, "rank": index + 1, "arch": str(arch),
                         "search_score": float(search_score),
                         "test_accuracy": metrics["test_accuracy"],
                         "params_m": problem.space.params_m(arch)})
            atomic_write_csv(run / AUDIT_FILE, pd.DataFrame(rows))
            bar.update(1)
    return Audit(pd.DataFrame(rows), len(problem.splits.test.indices))
