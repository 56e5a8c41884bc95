"""``cifar_mnist``: Shah et al.'s CIFAR-MNIST dominoes from CIFAR-10 python batches and MNIST IDX files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from samlens._optional import require
from samlens.data.base import SpuriousDataset
from samlens.data.dominoes import BlockPool, build_dominoes, select_classes
from samlens.data.idx import load_mnist_split
from samlens.data.pairing import check_classes, check_fraction, partition_per_class
from samlens.data.real.cifar_batches import read_cifar10
from samlens.data.real.common import require_dir
from samlens.data.registry import register_dataset
from samlens.errors import ConfigError
from samlens.validate import check_bool

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _mnist_block(images: np.ndarray) -> torch.Tensor:
    # Shah et al.: 28x28 padded by 2 px to 32x32, repeated to three channels.
    x = F.pad(torch.as_tensor(images).float() / 255.0, (2, 2, 2, 2))
    return x[:, None].expand(-1, 3, -1, -1).contiguous()


def _cifar_block(images: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255.0


@register_dataset("cifar_mnist")
def cifar_mnist(
    root: str | Path | None = None,
    seed: int = 0,
    *,
    cifar_classes: Sequence[int] = (1, 9),
    mnist_classes: Sequence[int] = (0, 1),
    randomize: bool = False,
    val_fraction: float = 0.1,
    download: bool = False,
) -> SpuriousDataset:
    """CIFAR-MNIST (Shah et al. 2020): MNIST on top (other, easy) over CIFAR-10 below (label); 3x64x32.

    ``root`` holds ``cifar-10-batches-py/`` and the MNIST IDX files (in ``root``, ``root/raw``
    or ``root/MNIST/raw``, plain or .gz). Class k pairs MNIST ``mnist_classes[k]`` with CIFAR
    ``cifar_classes[k]`` (default 0/automobile and 1/truck). Per class n = min over the four
    source classes of the official split (5,000 train, 980 test); ``val_fraction`` of each
    train class is held out as ``val`` (0 keeps the paper's 5,000 and leaves val empty).
    Train/val/test are fully redundant unless ``randomize`` pairs the blocks independently;
    probe_train / probe_test always pair them independently (train / test sources).
    ``download=True`` lets torchvision fetch both datasets (needs network access).
    """
    cifar_classes = check_classes("cifar_classes", cifar_classes, 10)
    mnist_classes = check_classes("mnist_classes", mnist_classes, 10)
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)):
        raise ConfigError(f"val_fraction must be a number in [0, 1], got {val_fraction!r}")
    val_fraction = check_fraction("val_fraction", val_fraction)
    randomize = check_bool("randomize", randomize)
    download = check_bool("download", download)
    if download:
        with require("data"):
            from torchvision.datasets import MNIST

        for train in (True, False):
            MNIST(str(root), train=train, download=True)
    folder = require_dir(root, "cifar-10-batches-py/ and the MNIST IDX files")
    label_pools, other_pools, per_class = {}, {}, {}
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        c_images, c_labels = read_cifar10(folder, split == "train", download)
        m_images, m_labels = load_mnist_split(folder, split)
        c_keep, c_pos = select_classes(c_labels, cifar_classes)
        m_keep, m_pos = select_classes(m_labels, mnist_classes)
        counts = [np.sum(c_pos == k) for k in range(len(cifar_classes))]
        counts += [np.sum(m_pos == k) for k in range(len(mnist_classes))]
        n = int(min(counts))
        cifar = BlockPool(_cifar_block(c_images[c_keep]), c_pos)
        mnist = BlockPool(_mnist_block(m_images[m_keep]), m_pos)
        if split == "test":
            label_pools["test"], other_pools["test"] = cifar, mnist
            per_class["test"] = per_class["probe_test"] = n
            continue
        n_val = int(round(val_fraction * n))
        if n_val >= n:
            raise ConfigError(
                f"val_fraction {val_fraction} leaves no training examples ({n} per class); use less"
            )
        if n_val == 0:
            # No val examples: the dominoes still need a val pool to draw from, so hand them the
            # train pools with a per-class size of 0; the val split comes out empty.
            label_pools["train"] = label_pools["val"] = cifar
            other_pools["train"] = other_pools["val"] = mnist
            per_class["val"], per_class["train"] = 0, n
            per_class["probe_train"] = n
            continue
        for pool, target in ((cifar, label_pools), (mnist, other_pools)):
            fractions = (n_val / np.bincount(pool.labels).min(), 1 - n_val / np.bincount(pool.labels).min())
            val_idx, train_idx = partition_per_class(pool.labels, fractions, rng)
            target["val"] = BlockPool(pool.images[val_idx], pool.labels[val_idx])
            target["train"] = BlockPool(pool.images[train_idx], pool.labels[train_idx])
        per_class["val"] = n_val
        per_class["train"] = per_class["probe_train"] = n - n_val
    return build_dominoes(
        "cifar_mnist",
        label_pools=label_pools,
        other_pools=other_pools,
        correlation=1.0,
        per_class=per_class,
        seed=seed,
        attribute_names=("cifar", "mnist"),
        class_names=[CIFAR_CLASSES[c] for c in cifar_classes],
        other_names=[f"mnist{c}" for c in mnist_classes],
        info={"root": str(folder), "randomize": randomize},
        independent=bool(randomize),
    )
