"""Reading MNIST-style IDX files (plain or .gz) with one-line errors.

torchvision's ``read_image_file`` only reads uncompressed files and fails with a bare assertion on
bad input; the Debian and Yann LeCun copies are gzipped, so we parse the (tiny) header ourselves.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from samlens.errors import DatasetFormatError

IDX_NAMES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """Read a uint8 IDX file (magic 0x0000080N) with ``ndim`` dimensions."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DatasetFormatError(f"{path}: cannot read IDX file ({err})") from None
    expected = f"an IDX file of uint8 with {ndim} dimension(s)"
    if len(raw) < 4 + 4 * ndim or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] != ndim:
        raise DatasetFormatError(f"{path}: bad IDX header; expected {expected}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != math.prod(dims):  # math.prod: np.prod wraps around on crafted huge dims
        raise DatasetFormatError(f"{path}: IDX header says shape {dims} but holds {body.size} values")
    return body.reshape(dims).copy()


def find_idx(root: str | Path, split: str, kind: str) -> Path:
    """Locate ``<name>`` or ``<name>.gz`` in ``root`` or torchvision's ``root/MNIST/raw`` layout."""
    root = Path(root)
    name = IDX_NAMES[(split, kind)]
    for folder in (root, root / "raw", root / "MNIST" / "raw", root / "FashionMNIST" / "raw"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise DatasetFormatError(
        f"{root / name}: file not found; expected {name}[.gz] in {root} or {root}/MNIST/raw"
    )


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzipped if the name ends in .gz); used to build fixtures."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def load_mnist_split(root: str | Path, split: str, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 28, 28]`` uint8 and labels ``[N]`` int64 of one official split."""
    images_path = find_idx(root, split, "images")
    labels_path = find_idx(root, split, "labels")
    images = read_idx(images_path, 3)
    if images.shape[1:] != (28, 28):
        # Every reader of these files crops, colours or tiles 28x28 digits; another size would
        # reshape into a different number of images than there are labels, or fail deep inside.
        raise DatasetFormatError(
            f"{images_path}: images are {images.shape[1]}x{images.shape[2]}; expected 28x28"
        )
    labels = read_idx(labels_path, 1).astype(np.int64)
    if len(images) != len(labels):
        raise DatasetFormatError(
            f"{labels_path}: {len(labels)} labels but {images_path.name} holds {len(images)} images"
        )
    if len(labels) and labels.max() >= num_classes:
        raise DatasetFormatError(
            f"{labels_path}: label {labels.max()} out of range; expected 0..{num_classes - 1}"
        )
    return images, labels
