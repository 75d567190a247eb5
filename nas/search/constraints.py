"""Hard constraints of a search (`--constraint flops<=50`, repeatable; all must hold): every
trial a searcher spends is on an architecture that meets them.

Rejection, the same for every searcher. The loop judges each proposal on its costs (the cached
`nas.search.objectives.Costs`: params M, MFLOPs, latency ms) before scoring it. One that
breaks a constraint is not scored and does not count toward `--trials`: it is recorded in the
study as a PRUNED trial (user attributes `infeasible` and `constraints`, the violations cost -
limit, > 0 broken), and the searcher is asked again. `MAX_REJECTIONS` proposals in a row
without a feasible one stop the search with a one-line error. So the study keeps what each
searcher proposed, a resume starts from it, and trials.csv lists the completed, feasible
trials only.

How each searcher sees a rejection (read in Optuna 5.1's source):
- TPE learns the feasible region from the rejections. It builds its densities from COMPLETE
  and PRUNED trials, and `_split_trials` fills its "good" group with the best completed
  (feasible) trials first, so while gamma(n) (10% of all its trials, at most 25) is no more
  than the completed trials, every rejected proposal shapes its "bad" density. With
  `TPESampler(constraints_func=constraint_values)` each COMPLETE and PRUNED trial also
  carries its violations as Optuna's constraints (`_process_constraints_after_trial` in
  `after_trial`, which runs after the loop has set the user attributes), and `_split_trials`
  ranks an infeasible trial behind every feasible one and by its total violation, which
  matters early, when the good group needs more trials than have completed. (PRUNED trials
  also count toward its 10 random start-up trials.) On the NB201 table under a FLOPs limit
  keeping 22% of the cells, TPE rejects a fifth as many proposals as random search over
  trials 31-60 (tests/nas/test_constraints.py); without `constraints_func` it rejected about
  as few in a check over 6 seeds, so the PRUNED trials carry most of what it learns.
- NSGA-II does not learn from them: its generations and parents are COMPLETE trials only
  (`_ga/_base.py`), all feasible here, so its constrained domination never meets an
  infeasible trial. It breeds children of feasible parents, which keeps most proposals near
  the feasible region; `constraints_func` records the values for Optuna's own views.
- Random search, evolution and EPNAS are steered by rejection alone. Optuna's random sampler
  draws afresh at every ask; evolution and EPNAS draw by (seed, trial number), so a rejected
  trial's successor is a new draw, and their state leaves PRUNED trials out (evolution's
  population is COMPLETE trials; EPNAS fits its surrogate on COMPLETE trials and expands a
  round's evaluated, unpruned configurations). Their state is still the study's alone, so a
  resumed run proposes what an uninterrupted one would.

Satisfiability, before any training: `check_satisfiable` refuses constraints that no
architecture of the space meets, stating the space's range. Each space's `smallest()` has the
fewest parameters and FLOPs of all its architectures: in NB201 and DARTS cells a cost is a sum
over edges, each at its minimum (zero) with the op `smallest` takes; in mobilenet every
decision (resolution, depth, kernel, expansion) only adds work as it grows.
tests/nas/test_constraints.py checks this against all 15,625 NB201 cells, and against samples
and every one-decision change of the extremes in darts and mobilenet. So `smallest()` meets
every params and flops limit that any architecture meets, all of them together. The fastest architecture is not
known without measuring them all: the latency of `smallest()` is the estimate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from optuna.trial import FrozenTrial

from nas.errors import ConfigError
from nas.search.objectives import LIMIT_FORM, Costs, parse_limit
from search_spaces import Architecture, SearchSpace

if TYPE_CHECKING:
    from nas.searchers import OptunaSearcher

MAX_REJECTIONS = 10_000  # proposals in a row that break a constraint before the search stops
CONSTRAINTS_ATTR, INFEASIBLE_ATTR = "constraints", "infeasible"
LATENCY_ATTR = "latency_ms"  # measured for a latency constraint: once per architecture per run
_UNITS = {"params": "M", "flops": "M"}
_NAMES = {"params": "parameters", "flops": "FLOPs"}


@dataclass(frozen=True)
class Constraint:
    """One limit a searched architecture must meet: `cost` <= `limit`."""

    cost: str
    limit: float

    @classmethod
    def parse(cls, text: str) -> "Constraint":
        limit = parse_limit(text)
        if limit is None:
            raise ConfigError(f"--constraint takes {LIMIT_FORM}; got {text!r}")
        return cls(*limit)

    def __str__(self) -> str:
        return f"{self.cost}<={self.limit!r}"


def parse_constraints(texts: str | Sequence[str]) -> tuple[Constraint, ...]:
    """The constraints of a `--constraint` list (a single string is one constraint)."""
    return tuple(Constraint.parse(t) for t in ((texts,) if isinstance(texts, str) else texts))


class Constraints:
    """A search's constraints judged on the costs `cost(arch, name)` gives (`Costs`, or a
    table's costs in a benchmark)."""

    def __init__(self, constraints: Sequence[Constraint],
                 cost: Callable[[Architecture, str], float]) -> None:
        self.constraints, self.cost = tuple(constraints), cost

    def __bool__(self) -> bool:
        return bool(self.constraints)

    def __str__(self) -> str:
        return ", ".join(map(str, self.constraints))

    def violations(self, arch: Architecture) -> list[float]:
        """cost - limit per constraint, in order: <= 0 met, > 0 broken (Optuna's convention)."""
        return [self.cost(arch, c.cost) - c.limit for c in self.constraints]

    def is_feasible(self, arch: Architecture) -> bool:
        return all(v <= 0 for v in self.violations(arch))

    def attrs(self, arch: Architecture) -> dict:
        """What a judged trial records: the violations, the latency measured for a latency
        constraint (reused on resume), and `infeasible` on a rejected one; nothing without
        constraints, so an unconstrained study is unchanged."""
        if not self.constraints:
            return {}
        violations = self.violations(arch)
        attrs: dict = {INFEASIBLE_ATTR: True} if any(v > 0 for v in violations) else {}
        if any(c.cost == "latency" for c in self.constraints):
            attrs[LATENCY_ATTR] = self.cost(arch, "latency")
        # Written in this order, the violations last: a worker that sees them sees the verdict
        # (`verdict`, which shared studies rank by).
        attrs[CONSTRAINTS_ATTR] = violations
        return attrs


def constraint_values(trial: FrozenTrial) -> list[float]:
    """Optuna's `constraints_func`: the violations the loop recorded on the trial."""
    return list(trial.user_attrs.get(CONSTRAINTS_ATTR, ()))


def verdict(trial: FrozenTrial) -> bool | None:
    """Whether a trial meets the constraints, as its worker recorded (`Constraints.attrs`);
    None while it has not been judged."""
    if CONSTRAINTS_ATTR not in trial.user_attrs:
        return None
    return not trial.user_attrs.get(INFEASIBLE_ATTR, False)


def check_rejections(in_a_row: int, constraints: Constraints) -> None:
    """Stop a searcher that keeps proposing architectures that break the constraints."""
    if in_a_row >= MAX_REJECTIONS:
        raise ConfigError(f"the searcher proposed {in_a_row} architectures in a row that break "
                          f"{constraints} (each kept in the study as a pruned trial); loosen "
                          f"--constraint or try another --searcher")


def ask_feasible(searcher: OptunaSearcher, constraints: Constraints
                 ) -> tuple[Architecture, int]:
    """The searcher's next proposal that meets the constraints, and how many it proposed
    before it that did not (each told to the study as PRUNED, module doc)."""
    rejected = 0
    while True:
        (arch,) = searcher.ask(1)
        attrs = constraints.attrs(arch)
        if not attrs.get(INFEASIBLE_ATTR):
            return arch, rejected
        searcher.reject(arch, attrs)
        rejected += 1
        check_rejections(rejected, constraints)


def check_satisfiable(space: SearchSpace, constraints: Sequence[Constraint],
                      costs: Costs | None = None) -> None:
    """Refuse, in one line, constraints that no architecture of `space` meets (module doc:
    `smallest()` is the cheapest in parameters and FLOPs; its latency is an estimate of the
    fastest). Counts the cheapest architecture's costs, and the largest's only to say the
    range of a refused constraint."""
    costs = costs or Costs(space)
    cheapest = space.smallest()
    label = f"{space.name} (C={space.width}, N={space.cells})"
    for constraint in constraints:
        low = costs(cheapest, constraint.cost)
        if low <= constraint.limit:
            continue
        if constraint.cost == "latency":
            raise ConfigError(f"no architecture of {label} is likely to have {constraint}: the "
                              f"one with the fewest FLOPs takes {low:.4g} ms here (an estimate "
                              f"of the fastest); raise the limit")
        high = costs(space.largest(), constraint.cost)
        raise ConfigError(f"no architecture of {label} has {constraint}: its "
                          f"{_NAMES[constraint.cost]} range from "
                          f"{low:.4g} to {high:.4g} {_UNITS[constraint.cost]}")


__all__ = ["CONSTRAINTS_ATTR", "Constraint", "Constraints", "INFEASIBLE_ATTR", "LATENCY_ATTR",
           "MAX_REJECTIONS", "ask_feasible", "check_rejections", "check_satisfiable",
           "constraint_values", "verdict", "parse_constraints"]
