"""A small categorical space with one known optimum, for searcher tests: 6 decisions of 4
choices (4,096 architectures), scored by how many decisions match TARGET (the optimum: 6)."""
from __future__ import annotations

import optuna

DECISIONS, CHOICES = 6, ["a", "b", "c", "d"]
TARGET = ["c", "a", "d", "b", "b", "d"]


def objective(trial: optuna.Trial) -> float:
    values = [trial.suggest_categorical(f"x{i}", CHOICES) for i in range(DECISIONS)]
    return float(sum(v == t for v, t in zip(values, TARGET)))


def proposals(study: optuna.Study) -> list[tuple]:
    return [tuple(t.params[f"x{i}"] for i in range(DECISIONS)) for t in study.trials]
