"""Dominoes: two image blocks stacked vertically, each carrying a class, redundant in train.

The top block holds the *other* attribute (the easy feature), the bottom block the *label*
(the harder feature), as in Shah et al.'s CIFAR-MNIST (MNIST on top, CIFAR below). In
``train``/``val``/``test`` the blocks agree on a ``correlation`` fraction of examples (1.0 =
fully redundant); the probe splits pair the blocks independently (balanced within class), so a
linear probe for ``label`` measures the bottom block's feature and one for ``other`` the top's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from samlens.data.base import SplitData, SpuriousDataset
from samlens.data.pairing import (
    assign_others,
    balance_classes,
    balanced_others,
    check_fraction,
    draw_by_class,
)
from samlens.data.sources import resize
from samlens.errors import ConfigError

# Random stream of the shuffle_easy re-draw, separate from the dataset's main stream.
SHUFFLE_STREAM = 1


@dataclass
class BlockPool:
    """Source images of one block for one split: float ``[N, S, S]`` or ``[N, C, S, S]`` in [0, 1]."""

    images: torch.Tensor
    labels: np.ndarray


def prepare_block(images: np.ndarray, pad: int, size: int) -> torch.Tensor:
    """Pad (so the strokes keep MNIST's margin) and resize square grayscale images to ``size``."""
    x = torch.as_tensor(images)
    x = F.pad(x, (pad, pad, pad, pad)) if pad else x
    return resize(x, (size, size))


def select_classes(labels: np.ndarray, classes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Indices of examples whose source class is in ``classes`` and their position in ``classes``."""
    lookup = {c: k for k, c in enumerate(classes)}
    keep = np.flatnonzero(np.isin(labels, list(classes)))
    return keep, np.array([lookup[int(c)] for c in labels[keep]], dtype=np.int64)


def check_flag(name: str, value: bool) -> bool:
    # YAML and `-o` give real booleans; a string such as "false" would otherwise be truthy.
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def check_block_size(block_size: int) -> int:
    block_size = int(block_size)
    if not 8 <= block_size <= 128:
        raise ConfigError(f"block_size must be in 8..128, got {block_size}")
    return block_size


def _with_channels(x: torch.Tensor) -> torch.Tensor:
    """Grayscale ``[N, S, S]`` → ``[N, 1, S, S]``; colour ``[N, C, S, S]`` unchanged."""
    return x[:, None] if x.ndim == 3 else x


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.mul(255.0).round_().to(torch.uint8)


def build_dominoes(
    name: str,
    *,
    label_pools: dict[str, BlockPool],
    other_pools: dict[str, BlockPool],
    correlation: float,
    per_class: dict[str, int | None],
    seed: int,
    attribute_names: tuple[str, str],
    class_names: Sequence[str],
    other_names: Sequence[str],
    info: dict,
    independent: bool = False,
    shuffle_easy: bool = False,
) -> SpuriousDataset:
    """Stack an other-block image on top of every (class-balanced) label-block image of each split.

    ``shuffle_easy`` re-draws the train split's top (easy) blocks independently of the label,
    balanced within class, so that only the bottom (hard) block predicts it. The re-draw uses
    its own random stream, so every other split and train's bottom blocks stay bit-identical
    to the dataset without it: runs trained on either are probed on the same examples.
    """
    correlation = check_fraction("correlation", correlation)
    shuffle_easy = check_flag("shuffle_easy", shuffle_easy)
    k = len(class_names)
    rng = np.random.default_rng(seed)
    sources = {"train": "train", "val": "val", "test": "test", "probe_train": "train", "probe_test": "test"}
    splits: dict[str, SplitData] = {}
    for split, source in sources.items():
        label_pool, other_pool = label_pools[source], other_pools[source]
        keep = balance_classes(label_pool.labels, rng, per_class.get(split))
        labels = label_pool.labels[keep]
        if split.startswith("probe") or independent:
            others = balanced_others(labels, k, rng)
        else:
            others = assign_others(labels, correlation, k, rng)
        top_index = draw_by_class(others, other_pool.labels, rng)
        if split == "train" and shuffle_easy:
            shuffle_rng = np.random.default_rng([seed, SHUFFLE_STREAM])
            others = balanced_others(labels, k, shuffle_rng)
            top_index = draw_by_class(others, other_pool.labels, shuffle_rng)
        top = _with_channels(other_pool.images[top_index])
        bottom = _with_channels(label_pool.images[keep])
        channels = max(top.shape[1], bottom.shape[1])
        top, bottom = top.expand(-1, channels, -1, -1), bottom.expand(-1, channels, -1, -1)
        images = _to_uint8(torch.cat([top, bottom], dim=2))
        splits[split] = SplitData(labels=labels, others=others, images=images)
    channels, height, width = splits["train"].images.shape[1:]
    return SpuriousDataset(
        name,
        num_classes=k,
        input_shape=(channels, height, width),
        attribute_names=attribute_names,
        num_other=k,
        splits=splits,
        class_names=class_names,
        other_names=other_names,
        info={"correlation": correlation, "seed": seed, "shuffle_easy": shuffle_easy, **info},
    )
