"""Supernet training: the one loop, its step context, its methods, and architecture evaluation."""
from supernets.evaluation import ScoringData, accuracy, recalibrate_batchnorm
from supernets.loop import Optimisation, StepMethod, TrainConfig, sgd_with_schedule, train
from supernets.methods import METHODS, MethodConfig, TrainingMethod
from supernets.step_context import StepContext

__all__ = ["METHODS", "MethodConfig", "Optimisation", "ScoringData", "StepContext", "StepMethod",
           "TrainConfig", "TrainingMethod", "accuracy", "recalibrate_batchnorm",
           "sgd_with_schedule", "train"]
