"""CIFAR-10's python batches (``cifar-10-batches-py/``), read with a restricted unpickler.

A pickle can run any code it names, so these files are unpickled allowing only what the batches
hold: dicts, lists and strings, and numpy arrays (rebuilt from their bytes). Anything else, and any
batch whose content is not N x 3072 uint8 images with N labels in 0..9, is a one-line
``DatasetFormatError`` naming the file.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from samlens._optional import require
from samlens.errors import DatasetFormatError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
_EXPECTED = "expected pickled dicts with 'data' (N x 3072 uint8) and 'labels'"

# What numpy arrays pickle as: the array's rebuild function, its class and dtype, ``_frombuffer``
# (pickle protocol 5) and, under protocol 2, ``_codecs.encode``, which rebuilds the raw bytes of the
# array from a latin-1 string.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR-10 batch never holds")


def _load(path: Path) -> Any:
    # Python 2's str (CIFAR-10 was pickled by Python 2) decodes as latin-1, as numpy's arrays need.
    with open(path, "rb") as fh:
        return _BatchUnpickler(fh, encoding="latin1").load()


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch: ``[N, 32, 32, 3]`` uint8 images (NHWC) and int64 labels."""
    folder, name = path.parent, path.name
    bad = f"{folder}: cannot read CIFAR-10 batch {name}"
    try:
        entry = _load(path)
    except Exception as err:  # a damaged pickle raises nearly anything (EOF, Overflow, Memory...)
        detail = " ".join(f"{type(err).__name__}: {err}".split())[:200]
        raise DatasetFormatError(f"{bad} ({detail}); {_EXPECTED}") from None
    if not isinstance(entry, dict) or "data" not in entry or "labels" not in entry:
        raise DatasetFormatError(f"{bad} (not a dict with 'data' and 'labels'); {_EXPECTED}")
    data, labels = entry["data"], entry["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", type(data).__name__)
        raise DatasetFormatError(f"{bad} ('data' is {shape} {getattr(data, 'dtype', '')}); {_EXPECTED}")
    if not isinstance(labels, (list, np.ndarray)) or any(
        isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) for v in labels
    ):
        raise DatasetFormatError(f"{bad} ('labels' is not a list of integers); {_EXPECTED}")
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(labels) != len(data):
        raise DatasetFormatError(f"{folder}: {len(labels)} labels for {len(data)} images in {name}")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        worst = labels.max() if labels.max() > 9 else labels.min()
        raise DatasetFormatError(f"{folder}: label {worst} out of range; expected 0..9 (in {name})")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def read_cifar10(root: Path, train: bool, download: bool) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 ``[N, 32, 32, 3]`` uint8 images and labels of the train or test batches under
    ``root/cifar-10-batches-py``; ``download`` first fetches them with torchvision (which verifies
    the archive)."""
    if download:
        with require("data"):
            from torchvision.datasets import CIFAR10

        CIFAR10(str(root), train=train, download=True)
    batches = root / "cifar-10-batches-py"
    names = TRAIN_BATCHES if train else TEST_BATCHES
    for name in TRAIN_BATCHES + TEST_BATCHES:
        if not (batches / name).is_file():
            raise DatasetFormatError(
                f"{batches / name}: file not found; expected the CIFAR-10 python batches "
                "(data_batch_1..5, test_batch), or pass download=True"
            )
    parts = [read_batch(batches / name) for name in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
