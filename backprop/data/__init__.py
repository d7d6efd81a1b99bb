"""Datasets for Backprop Studio: shipped MNIST, downloadable sets and a person's own files."""

from .download import REGISTRY, DownloadError, download
from .facts import class_counts, dataset_facts, mean_images, sample_images
from .idx import ChecksumError, clear_memory_cache, load_idx
from .tasks import DATASETS, SHIPPED_MNIST, Dataset, load_task

__all__ = [
    "DATASETS",
    "REGISTRY",
    "SHIPPED_MNIST",
    "ChecksumError",
    "Dataset",
    "DownloadError",
    "class_counts",
    "clear_memory_cache",
    "dataset_facts",
    "download",
    "load_idx",
    "load_task",
    "mean_images",
    "sample_images",
]
