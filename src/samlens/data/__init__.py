"""Datasets with redundant and spurious features.

``get_dataset(name, root=None, seed=0, **options)`` builds a :class:`SpuriousDataset`;
``list_datasets()`` names them. Importing this package registers every dataset.
"""

from importlib import import_module
from importlib.util import find_spec

from samlens.data import stand_ins  # noqa: F401  (registers datasets)
from samlens.data.base import SplitData, SpuriousDataset
from samlens.data.registry import DATASETS, dataset_options, get_dataset, list_datasets, register_dataset

for _module in ("textured", "real", "toy"):
    # Modules are registered when present; a broken module still raises (find_spec only checks existence).
    if find_spec(f"samlens.data.{_module}") is not None:
        import_module(f"samlens.data.{_module}")

__all__ = [
    "DATASETS",
    "SplitData",
    "SpuriousDataset",
    "dataset_options",
    "get_dataset",
    "list_datasets",
    "register_dataset",
]
