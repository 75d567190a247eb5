"""Supernet training: the one loop, its methods, and architecture evaluation."""
from supernets.evaluation import accuracy, recalibrate_batchnorm
from supernets.loop import TrainConfig, build_optimizer, train
from supernets.methods import METHODS, MethodConfig, TrainingMethod

__all__ = ["METHODS", "MethodConfig", "TrainConfig", "TrainingMethod", "accuracy", "build_optimizer",
           "recalibrate_batchnorm", "train"]
