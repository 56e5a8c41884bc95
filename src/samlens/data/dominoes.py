"""Dominoes: two image blocks stacked vertically, each carrying a class, redundant in train.

The top block holds the *other* attribute (the easy feature), the bottom block the *label*
(the harder feature), as in Shah et al.'s CIFAR-MNIST (MNIST on top, CIFAR below). In
``train``/``val``/``test`` the blocks agree on a ``correlation`` fraction of examples (1.0 =
fully redundant); the probe splits pair the blocks independently (balanced within class), so a
linear probe for ``label`` measures the bottom block's feature and one for ``other`` the top's.

With ``held_out_probes`` (the offline stand-ins) no source image of either block in a probe
split is one the train split shows the network: the probe then measures features of unseen
images, as a probe of the test distribution should, not how well training images were fitted."""

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
from samlens.validate import check_bool

# Random stream of the shuffle_easy re-draw, separate from the dataset's main stream.
SHUFFLE_STREAM = 1


@dataclass
class BlockPool:
    """Source images of one block for one split: float ``[N, S, S]`` or ``[N, C, S, S]`` in [0, 1].

    ``ids`` (optional) identify each source image uniquely within its source (across the pools
    of one block), so that splits can be checked for shared images.
    """

    images: torch.Tensor
    labels: np.ndarray
    ids: np.ndarray | None = None


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
    held_out_probes: bool = False,
) -> SpuriousDataset:
    """Stack an other-block image on top of every (class-balanced) label-block image of each split.

    Pools are keyed by split: ``train``, ``val``, ``test``, and with ``held_out_probes`` optionally
    ``probe_train`` / ``probe_test``. Without ``held_out_probes`` the probe splits re-pair the
    train and test pools. With it, a probe split takes its own pool where one is given;
    otherwise ``probe_train``'s label block comes from the train-pool images the train split
    did not draw (a ``ConfigError`` if none are left) and ``probe_test`` from the test pool. The
    other block's ``probe_train`` pool must then be given. Each split records the source ids of
    its blocks (where the pools have them) in ``extra["label_source"]`` / ``extra["other_source"]``.

    ``shuffle_easy`` re-draws the train split's top (easy) blocks independently of the label,
    balanced within class, so that only the bottom (hard) block predicts it. The re-draw uses
    its own random stream, so every other split and train's bottom blocks stay bit-identical
    to the dataset without it: runs trained on either are probed on the same examples.
    """
    correlation = check_fraction("correlation", correlation)
    shuffle_easy = check_bool("shuffle_easy", shuffle_easy)
    k = len(class_names)
    rng = np.random.default_rng(seed)
    if held_out_probes and "probe_train" not in other_pools:
        raise ValueError(f"{name}: held_out_probes needs an other-block probe_train pool")
    sources = {"train": "train", "val": "val", "test": "test", "probe_train": "train", "probe_test": "test"}
    splits: dict[str, SplitData] = {}
    train_keep = np.zeros(0, dtype=np.int64)
    for split, source in sources.items():
        label_pool = label_pools[split if held_out_probes and split in label_pools else source]
        other_pool = other_pools[split if held_out_probes and split in other_pools else source]
        candidates = np.arange(len(label_pool.labels))
        if held_out_probes and split == "probe_train" and "probe_train" not in label_pools:
            candidates = np.setdiff1d(candidates, train_keep)
            missing = sorted(set(range(k)) - set(label_pool.labels[candidates].tolist()))
            if missing:
                raise ConfigError(
                    f"{name}: the train split uses every training image of class(es) "
                    f"{', '.join(class_names[c] for c in missing)}, none are left for probe_train; "
                    "lower train_per_class"
                )
        keep = candidates[balance_classes(label_pool.labels[candidates], rng, per_class.get(split))]
        if split == "train":
            train_keep = keep
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
        extra = {}
        if label_pool.ids is not None:
            extra["label_source"] = label_pool.ids[keep]
        if other_pool.ids is not None:
            extra["other_source"] = other_pool.ids[top_index]
        splits[split] = SplitData(labels=labels, others=others, images=images, extra=extra)
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
