"""Searchers: Optuna samplers driven through one study (see `search_spaces/base.py` on why they
are not training samplers). `OptunaSearcher` is the study seen in architectures: it asks the
study's sampler for trials, tells it scores, and finds trials a killed run left unfinished.

Each decision becomes a categorical Optuna parameter of the same name, its choices spelled as
strings, so the study in `study.db` reads naturally in optuna-dashboard. Every trial stores the
architecture's canonical string as the user attribute `arch`.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from search_spaces.base import Architecture, SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _label(choice: object) -> str:
    return str(choice)


class OptunaSearcher:
    """Proposes architectures from an Optuna study's sampler; `tell` completes the trial."""

    def __init__(self, space: SearchSpace, study: optuna.Study) -> None:
        self.space, self.study = space, study
        self.distributions = {
            d.name: CategoricalDistribution([_label(c) for c in d.choices]) for d in space.decisions}
        self._pending: dict[Architecture, list[int]] = {}
        # The decisions in the space's order, for samplers that progress through them (EPNAS):
        # a study's parameters come back from storage in no promised order.
        if study.user_attrs.get("decisions") != list(self.distributions):
            study.set_user_attr("decisions", list(self.distributions))
            study.set_user_attr("choices", {name: list(dist.choices)
                                            for name, dist in self.distributions.items()})

    def architecture_of(self, params: Mapping[str, str]) -> Architecture:
        values = []
        for decision in self.space.decisions:
            labels = [_label(c) for c in decision.choices]
            values.append(decision.choices[labels.index(params[decision.name])])
        return self.space.architecture(values)

    def ask(self, n: int = 1) -> list[Architecture]:
        archs = []
        for _ in range(n):
            trial = self.study.ask(self.distributions)
            arch = self.architecture_of(trial.params)
            trial.set_user_attr("arch", str(arch))
            self._pending.setdefault(arch, []).append(trial.number)
            archs.append(arch)
        return archs

    def tell(self, arch: Architecture, value: float | Sequence[float],
             attrs: Mapping[str, Any] | None = None) -> None:
        """Complete the architecture's oldest pending trial with its objective value(s), and
        `attrs` recorded with it."""
        self.finish(self._pop_pending(arch), value, attrs)

    def reject(self, arch: Architecture, attrs: Mapping[str, Any]) -> None:
        """Close the architecture's oldest pending trial unscored, as PRUNED, with `attrs`
        (why: `nas.search.constraints`)."""
        self.prune(self._pop_pending(arch), attrs)

    def _pop_pending(self, arch: Architecture) -> int:
        number = self._pending[arch].pop(0)
        if not self._pending[arch]:
            del self._pending[arch]
        return number

    def unfinished(self) -> list[tuple[int, Architecture]]:
        """Trials asked but never told (a run killed mid-trial), to finish on resume.

        A kill can land while `study.ask` is still writing a trial's parameters one by one, so
        the trial is reopened and any decision it lacks is suggested now by the sampler.
        """
        archs = []
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            trial = optuna.trial.Trial(self.study, frozen._trial_id)  # no public id accessor
            params = {name: trial.suggest_categorical(name, list(dist.choices))
                      for name, dist in self.distributions.items()}
            arch = self.architecture_of(params)
            trial.set_user_attr("arch", str(arch))
            archs.append((frozen.number, arch))
        return archs

    def finish(self, number: int, value: float | Sequence[float],
               attrs: Mapping[str, Any] | None = None) -> None:
        values = [float(v) for v in value] if isinstance(value, Sequence) else float(value)
        self._annotate(number, attrs)
        self.study.tell(number, values)

    def prune(self, number: int, attrs: Mapping[str, Any]) -> None:
        """Close a trial unscored; `attrs` are recorded first, so that the sampler's
        `after_trial` (Optuna's `constraints_func`) reads them."""
        self._annotate(number, attrs)
        self.study.tell(number, state=TrialState.PRUNED)

    def _annotate(self, number: int, attrs: Mapping[str, Any] | None) -> None:
        if attrs:
            storage = self.study._storage  # no public way to annotate a trial by its number
            trial_id = storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)
            for key, attr in attrs.items():
                storage.set_trial_user_attr(trial_id, key, attr)

    def completed(self) -> list[optuna.trial.FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


# A searcher factory: `(seed, constraints_func=None) -> sampler`. `constraints_func` reads a
# trial's constraint values (`nas.search.constraints.constraint_values`); TPE and NSGA-II take
# it, the others are steered by rejection alone (`nas.search.constraints` says what each does
# with it).
ConstraintsFunc = Callable[[optuna.trial.FrozenTrial], Sequence[float]]


class SamplerFactory(Protocol):
    def __call__(self, seed: int, constraints_func: ConstraintsFunc | None = None
                 ) -> optuna.samplers.BaseSampler: ...


def tpe(seed: int, constraints_func: ConstraintsFunc | None = None
        ) -> optuna.samplers.BaseSampler:
    # Optuna's defaults (10 random start-up trials, 24 EI candidates); multivariate TPE models the
    # joint distribution of decisions, which matters for cells whose ops interact.
    with _constraints_func_accepted():
        return optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                          constraints_func=constraints_func)


def random(seed: int, constraints_func: ConstraintsFunc | None = None
           ) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


def nsga2(seed: int, constraints_func: ConstraintsFunc | None = None
          ) -> optuna.samplers.BaseSampler:
    # Optuna's defaults (population 50, uniform crossover, mutation 1/number of parameters): the
    # genetic algorithm for several objectives (accuracy against FLOPs, parameters, latency).
    with _constraints_func_accepted():
        return optuna.samplers.NSGAIISampler(seed=seed, constraints_func=constraints_func)


@contextmanager
def _constraints_func_accepted() -> Iterator[None]:
    # Optuna 5 deprecates `constraints_func` for `Trial.set_constraint`, which Optuna 4 (still
    # supported: pyproject) lacks; both versions' samplers read the values it stores.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*`constraints_func`", category=FutureWarning)
        yield


def open_study(storage_path: str, name: str, sampler: optuna.samplers.BaseSampler,
               directions: Sequence[str] = ("maximize",)) -> optuna.Study:
    """The study in an SQLite file, created or resumed (`load_if_exists`)."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{storage_path}")
    return optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                               directions=list(directions), load_if_exists=True)
