"""Data sets: a registry of loaders, the seeded split, and fitted preprocessing as plain data."""

from trainboard.training.data.bundle import DataBundle, DataInfo, RawData, prepare_data
from trainboard.training.data.catalog import DATASETS, dataset_catalog

__all__ = ["DATASETS", "DataBundle", "DataInfo", "RawData", "dataset_catalog", "prepare_data"]
