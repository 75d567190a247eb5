"""Datasets, splits and mini-batches."""
from nas.data.batches import (BatchSource, DataConfig, DataSplits, load_dataset, make_splits,
                              split_train)
from nas.data.datasets import ImageData, load_data
from nas.data.prepared import PreparedBatches

__all__ = ["BatchSource", "DataConfig", "DataSplits", "ImageData", "PreparedBatches", "load_data", "load_dataset",
           "make_splits", "split_train"]
