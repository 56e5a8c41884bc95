"""Datasets by name: ``get_dataset(name, root=None, seed=0, **options)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from samlens.data.base import SpuriousDataset
from samlens.errors import ConfigError
from samlens.registry import Registry

DatasetFactory = Callable[..., SpuriousDataset]
DATASETS: Registry[DatasetFactory] = Registry("dataset")


def register_dataset(name: str) -> Callable[[DatasetFactory], DatasetFactory]:
    """Register ``factory(root=None, seed=0, **options) -> SpuriousDataset`` under ``name``."""
    return DATASETS.register(name)


def dataset_options(name: str) -> dict[str, Any]:
    """The options a dataset takes, with their defaults (``inspect.Parameter.empty`` if required)."""
    return DATASETS.options(name, ("root", "seed"))


def get_dataset(name: str, root: str | Path | None = None, seed: int = 0, **options: Any) -> SpuriousDataset:
    """Build the dataset registered as ``name``.

    Unknown names and options raise ``ConfigError``; missing or malformed files raise
    ``DatasetFormatError`` naming the file.
    """
    factory = DATASETS.get(name)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        # numpy's generators refuse negative seeds with a bare ValueError
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    valid = dataset_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        listed = ", ".join(sorted(valid)) or "(none)"
        raise ConfigError(
            f"dataset {name!r}: unknown option(s) {', '.join(unknown)}; valid options: {listed}"
        )
    return factory(root=root, seed=seed, **options)


def list_datasets() -> list[str]:
    return DATASETS.names()


def describe_factory(name: str) -> str:
    """First paragraph of the factory's docstring (for ``samlens data list``)."""
    doc = inspect.getdoc(DATASETS.get(name)) or ""
    return doc.split("\n\n")[0].replace("\n", " ")
