"""The search loop: ask the searcher, score with the scorer, tell; resumable from `study.db`.

Trials are the study's: a re-run with the same settings continues to the `trials` total, first
finishing any trial a killed run had asked for but not told. Scores are cached by canonical
string, so a searcher that proposes an architecture twice costs one evaluation. Under
`--constraint` a proposal that breaks one is pruned unscored and the searcher asked again
(`nas.search.constraints`); `trials` counts completed trials, which all meet them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import pandas as pd

import optuna
from optuna.trial import TrialState

from nas.config import SearchConfig
from nas.search.shared_study import (OVER_BUDGET_ATTR, WORKER_ATTR, SharedStudy, directions_of,
                             fail_stale, heartbeat, live_rank, worker_label)
from nas.errors import ConfigError
from nas.search.constraints import (INFEASIBLE_ATTR, LATENCY_ATTR, Constraints, ask_feasible,
                                    check_rejections, constraint_values, verdict,
                                    parse_constraints)
from nas.search.objectives import COLUMNS, Costs, Pick, pareto_mask, parse_objectives
from nas.runs import RunDir, atomic_write_csv, atomic_write_text
from nas.problem import SearchProblem
from nas.scorers import Scorer
from nas.searchers import SEARCHERS, TRIAL_KEYED, OptunaSearcher, SamplerFactory, open_study
from search_spaces import Architecture
from supernets.progress import Progress

TRIALS_FILE = "trials.csv"
BEST_FILE = "best.txt"
PARETO_FILE, PARETO_PLOT = "pareto.csv", "pareto.png"
SPENT_ATTR = "search_seconds"  # a one-process study's scoring time so far (--search-time)
PARTS_ATTR = "parts"  # a combined score's parts, kept with each trial (Scorer.parts)


@dataclass(frozen=True)
class SearchOutcome:
    """What a finished search hands on: the point `pick` names, its score, the table of
    every completed trial (also written as trials.csv), and how many proposals broke the
    constraints and were pruned unscored."""

    best: Architecture
    score: float
    table: pd.DataFrame
    rejected: int = 0


def trials_table(searcher: OptunaSearcher, costs: Costs, column: str,
                 objectives: tuple[str, ...] = ("accuracy",)) -> pd.DataFrame:
    """One row per completed trial: the score in `column`, parameters, FLOPs, and the latency
    when it is an objective or was measured for a constraint."""
    completed = searcher.completed()
    latency = "latency" in objectives or bool(completed) and all(
        LATENCY_ATTR in t.user_attrs for t in completed)
    columns = ["trial", "arch", column, "params_m", "flops_m", *(["latency_ms"] if latency else []),
               "wall_s"]
    rows, part_columns = [], {}
    for trial in completed:
        arch = searcher.space.parse(trial.user_attrs["arch"])
        params_m, flops_m = costs.sizes(arch)
        duration = trial.duration.total_seconds() if trial.duration else float("nan")
        row = {"trial": trial.number, "arch": str(arch), column: trial.values[0],
               "params_m": params_m, "flops_m": flops_m, "wall_s": duration}
        if latency:
            row["latency_ms"] = (trial.values[objectives.index("latency")]
                                 if "latency" in objectives else trial.user_attrs[LATENCY_ATTR])
        parts = trial.user_attrs.get(PARTS_ATTR, {})
        part_columns.update(dict.fromkeys(parts))
        rows.append({**row, **parts})
    return pd.DataFrame(rows, columns=[*columns, *part_columns])


def _spent_s(searcher: OptunaSearcher) -> float:
    """Seconds the study's completed trials took: a search budget that survives resume."""
    return sum(t.duration.total_seconds() for t in searcher.completed() if t.duration)


def run_search(run: RunDir, problem: SearchProblem, scorer: Scorer, config: SearchConfig,
               shared: SharedStudy | None = None, worker: int = 0, finish: bool = True,
               make_sampler: SamplerFactory | None = None) -> SearchOutcome | None:
    """Search up to `config.trials` trials (or `config.time_budget_s` seconds) with the searcher
    (an Optuna sampler; `make_sampler`, the searcher already looked up) through the run's
    study, or a study `shared` with other processes (`nas.search.shared_study`; `worker`
    numbers this process among them), scoring each with `scorer` and, with several objectives,
    its costs; under `config.constraints` only architectures that meet them are scored. With
    `finish`, write trials.csv (scores in the scorer's column), pareto.csv/.png for several
    objectives, and best.txt (the point `config.pick` names), and return it."""
    if config.trials == 0:
        return None
    column = scorer.column
    objectives = parse_objectives(config.objectives)
    costs = Costs(problem.space)
    constraints = Constraints(parse_constraints(config.constraints), costs)
    make_sampler = make_sampler or SEARCHERS.get(config.searcher)
    sampler = make_sampler(worker_seed(config.searcher, config.seed, worker),
                           constraints_func=constraint_values if constraints else None)
    if shared is None:
        study = open_study(str(run / "study.db"), "search", sampler, directions_of(objectives))
    else:
        study = shared.open(sampler)
    searcher = OptunaSearcher(problem.space, study)
    cache = {t.user_attrs["arch"]: float(t.values[0]) for t in searcher.completed()}
    parts = {t.user_attrs["arch"]: t.user_attrs.get(PARTS_ATTR, {}) for t in searcher.completed()}
    _seed_latency(searcher, costs, objectives)

    def values(arch: Architecture) -> list[float]:
        if str(arch) not in cache:
            cache[str(arch)] = scorer(arch)
            parts[str(arch)] = scorer.parts(arch)
        return [cache[str(arch)], *[costs(arch, o) for o in objectives[1:]]]

    def attrs(arch: Architecture) -> dict:
        """What a trial records beside its values: the parts of a combined score, and its
        constraint values (`Constraints.attrs`)."""
        return {**({PARTS_ATTR: parts[str(arch)]} if parts.get(str(arch)) else {}),
                **constraints.attrs(arch)}

    def write_table() -> None:  # along the way too, so a long search shows its trials
        atomic_write_csv(run / TRIALS_FILE, trials_table(searcher, costs, column, objectives))

    log_scalar = run.tensorboard()
    try:
        if shared is None:
            for number, arch in searcher.unfinished():  # a killed run's trial: judged first
                if constraints.is_feasible(arch):
                    searcher.finish(number, values(arch), attrs(arch))
                else:
                    searcher.prune(number, constraints.attrs(arch))
            _search_alone(searcher, values, config, column, log_scalar, write_table, attrs,
                          constraints)
        else:
            _search_shared(searcher, values, config, column, log_scalar, attrs, constraints)
    finally:
        log_scalar.close()
    return write_results(run, problem, searcher, config, column, costs) if finish else None


def _seed_latency(searcher: OptunaSearcher, costs: Costs, objectives: tuple[str, ...]) -> None:
    """Latency is measured once per architecture, resume included: as an objective (completed
    trials' values) or for a constraint (every judged trial's attribute)."""
    for t in searcher.study.get_trials(deepcopy=False,
                                       states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if "arch" not in t.user_attrs:
            continue
        if "latency" in objectives and t.state == TrialState.COMPLETE:
            costs.latency.seed(t.user_attrs["arch"], t.values[objectives.index("latency")])
        elif LATENCY_ATTR in t.user_attrs:
            costs.latency.seed(t.user_attrs["arch"], t.user_attrs[LATENCY_ATTR])


def worker_seed(searcher: str, seed: int, worker: int) -> int:
    """Optuna's own samplers draw from one stream each, so every worker needs its own seed; the
    project's (evolution, EPNAS) draw by trial number, so workers share the search's seed."""
    return seed if searcher in TRIAL_KEYED else seed + worker


def _search_alone(searcher: OptunaSearcher, values: Callable[[Architecture], list[float]],
                  config: SearchConfig, column: str, log_scalar: Callable,
                  write_table: Callable[[], None], attrs: Callable[[Architecture], dict],
                  constraints: Constraints) -> None:
    # The seconds spent are kept in the study, as this loop measures them (ask to tell, the
    # searcher's own time included), so a resume stops exactly where this run would have.
    done = len(searcher.completed())
    spent = float(searcher.study.user_attrs.get(SPENT_ATTR, _spent_s(searcher)))
    best = max((t.values[0] for t in searcher.completed()), default=float("-inf"))
    budget = config.time_budget_s if config.time_budget_s is not None else float("inf")
    rejected = 0
    with Progress(config.trials, initial=min(done, config.trials), desc="search",
                  unit="trial") as bar:
        for number in range(done, config.trials):
            if spent >= budget:
                print(f"search: time budget of {budget:g} s spent after {number} trials")
                break
            started = time.perf_counter()
            arch, before = ask_feasible(searcher, constraints)
            rejected += before
            value = values(arch)
            searcher.tell(arch, value, attrs(arch))
            spent += time.perf_counter() - started
            searcher.study.set_user_attr(SPENT_ATTR, spent)
            best = max(best, value[0])
            log_scalar(f"search/{column}", value[0], number)
            log_scalar(f"search/best_{column}", best, number)
            bar.update(1, best=f"{best:.4g}", **({"rejected": rejected} if constraints else {}))
            if number % 10 == 9:
                write_table()


def _search_shared(searcher: OptunaSearcher, values: Callable[[Architecture], list[float]],
                   config: SearchConfig, column: str, log_scalar: Callable,
                   attrs: Callable[[Architecture], dict], constraints: Constraints) -> None:
    """One worker's share of a study's budget (`nas.search.shared_study`: one budget, dead
    workers). A proposal that breaks the constraints is pruned unscored before it is ranked:
    it takes none of the budget."""
    study, label = searcher.study, worker_label()
    # One budget for all: the first worker to search records it, the others must agree.
    agreed = study.user_attrs.get("trials")
    if agreed is None:
        study.set_user_attr("trials", config.trials)
    elif agreed != config.trials:
        raise ConfigError(f"the shared study's budget is {agreed} trials, not {config.trials}; "
                          f"give --trials {agreed}, or choose another --study")
    budget = config.time_budget_s if config.time_budget_s is not None else float("inf")
    rejected = 0
    with Progress(config.trials, initial=min(len(searcher.completed()), config.trials),
                  desc=f"search {label}", unit="trial") as bar:
        while budget == float("inf") or _spent_s(searcher) < budget:
            fail_stale(study)
            trial = study.ask(searcher.distributions)
            with heartbeat(study, trial._trial_id):  # from the ask on: a death shows at once
                trial.set_user_attr(WORKER_ATTR, label)
                arch = searcher.architecture_of(trial.params)
                trial.set_user_attr("arch", str(arch))
                try:
                    judged = constraints.attrs(arch)
                except BaseException:  # Ctrl-C included: an unjudged trial holds up the others
                    study.tell(trial, state=TrialState.FAIL)
                    raise
                for key, attr in judged.items():  # before ranking: `live_rank` waits for them
                    trial.set_user_attr(key, attr)
                if judged.get(INFEASIBLE_ATTR):
                    study.tell(trial, state=TrialState.PRUNED)
                    outcome = "rejected"
                elif live_rank(study, trial.number, verdict if constraints else None) \
                        > config.trials:
                    trial.set_user_attr(OVER_BUDGET_ATTR, True)
                    study.tell(trial, state=TrialState.FAIL)
                    outcome = "over"
                else:
                    outcome = "scored"
                    value = values(arch)
                    for key, attr in attrs(arch).items():
                        if key not in judged:  # the constraints' are written already
                            trial.set_user_attr(key, attr)
                    study.tell(trial, value)
            if outcome == "rejected":
                rejected += 1
                check_rejections(rejected, constraints)
                continue
            rejected = 0
            if outcome == "over":
                if not _wait_for_retries(study):
                    break
                continue
            log_scalar(f"search/{column}", value[0], trial.number)
            bar.update(1, best=f"{value[0]:.4g}")


def _wait_for_retries(study: optuna.Study, poll_s: float = 1.0) -> bool:
    """The budget is taken, but a trial still running may belong to a dead worker and come back
    for its retry: wait until one is queued (True) or none is running any more (False)."""
    while True:
        fail_stale(study)
        states = [t.state for t in study.get_trials(deepcopy=False)]
        if TrialState.WAITING in states:
            return True
        if TrialState.RUNNING not in states:
            return False
        time.sleep(poll_s)


def write_results(run: RunDir, problem: SearchProblem, searcher: OptunaSearcher,
                  config: SearchConfig, column: str, costs: Costs | None = None
                  ) -> SearchOutcome:
    """trials.csv, pareto.csv/.png (several objectives) and best.txt from the whole study
    (`costs`: the parameters and FLOPs the search already computed). Every completed trial
    meets the constraints (the loop scores no other), so best.txt names one that does."""
    objectives = parse_objectives(config.objectives)
    table = trials_table(searcher, costs or Costs(problem.space), column, objectives)
    atomic_write_csv(run / TRIALS_FILE, table)
    if table.empty:
        raise ConfigError("no trial completed (every score failed, e.g. NaN); nothing to pick "
                          "from (trials.csv is written)")
    if len(objectives) > 1:
        write_pareto(run, table, column, objectives)
    pick = Pick.parse(config.pick)
    top = pick.choose(table, column)
    if top is None:
        cheapest = table[COLUMNS[pick.cost]].min()
        raise ConfigError(f"no architecture among the {len(table)} trials has {pick}; the "
                          f"smallest {pick.cost} found is {cheapest:.4g} (trials.csv is written)")
    atomic_write_text(run / BEST_FILE, f"{top['arch']}\n")
    rejected = sum(1 for t in searcher.study.get_trials(deepcopy=False,
                                                        states=(TrialState.PRUNED,))
                   if t.user_attrs.get(INFEASIBLE_ATTR))
    return SearchOutcome(problem.space.parse(top["arch"]), float(top[column]), table, rejected)


def write_pareto(run: RunDir, table: pd.DataFrame, column: str,
                 objectives: tuple[str, ...]) -> pd.DataFrame:
    """pareto.csv (the non-dominated trials, repeats merged) and pareto.png (each cost against
    the score, the front marked)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [column, *[COLUMNS[o] for o in objectives[1:]]]
    unique = table.drop_duplicates("arch")
    mask = pareto_mask(unique[columns].to_numpy(dtype=float),
                       [True] + [False] * (len(columns) - 1))
    front = unique[mask].sort_values(columns[1])
    atomic_write_csv(run / PARETO_FILE, front)
    fig, axes = plt.subplots(1, len(columns) - 1, figsize=(5.5 * (len(columns) - 1), 4.2),
                             squeeze=False)
    for ax, cost in zip(axes[0], columns[1:]):
        ax.scatter(unique[cost], unique[column], s=10, c="0.6", label="trials")
        ax.plot(front.sort_values(cost)[cost], front.sort_values(cost)[column], "o-", c="C3",
                ms=4, label="Pareto front")
        ax.set_xlabel(cost)
        ax.set_ylabel(column)
        ax.legend(fontsize=8)
    fig.suptitle(f"{len(unique)} architectures, {int(mask.sum())} on the front")
    fig.tight_layout()
    fig.savefig(run / PARETO_PLOT, dpi=120)
    plt.close(fig)
    return front
