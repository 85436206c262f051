"""Readers for MNIST (IDX) and CIFAR-10 (binary batches) in their official file formats."""

from __future__ import annotations

from accelsim.datasets.loaders import (
    DATASET_NAMES,
    SPLITS,
    Dataset,
    load_dataset,
    resolve_data_dir,
)

__all__ = ["DATASET_NAMES", "SPLITS", "Dataset", "load_dataset", "resolve_data_dir"]
