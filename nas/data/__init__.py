"""Datasets, splits and mini-batches."""
from nas.data.batches import BatchSource, DataConfig, DataSplits, make_splits, split_train
from nas.data.datasets import ImageData, load_data

__all__ = ["BatchSource", "DataConfig", "DataSplits", "ImageData", "load_data", "make_splits",
           "split_train"]
