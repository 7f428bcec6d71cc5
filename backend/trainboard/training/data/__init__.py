"""Data sets: a registry of loaders, the seeded split, and fitted preprocessing as plain data."""

import trainboard.training.data.preprocess as preprocess
from trainboard.training.data.bundle import DataBundle, prepare_data
from trainboard.training.data.catalog import DATASETS, dataset_catalog
from trainboard.training.data.types import DataInfo, RawData

__all__ = [
    "DATASETS",
    "DataBundle",
    "DataInfo",
    "RawData",
    "dataset_catalog",
    "prepare_data",
    "preprocess",
]
