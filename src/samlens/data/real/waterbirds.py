"""``waterbirds``: the group-DRO / WILDS layout (species folders + metadata.csv)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from samlens.data.base import SplitData, SpuriousDataset
from samlens.data.real.common import (
    FileImages,
    check_files_exist,
    check_image_size,
    check_unique,
    int_column,
    photo_transforms,
    read_csv,
    require_dir,
    require_file,
    require_rows,
    split_halves,
    str_column,
)
from samlens.data.registry import register_dataset
from samlens.validate import check_bool

COLUMNS = ("img_filename", "y", "split", "place")
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


@register_dataset("waterbirds")
def waterbirds(
    root: str | Path | None = None, seed: int = 0, *, image_size: int = 224, augment: bool = True
) -> SpuriousDataset:
    """Waterbirds (Sagawa et al. 2020): bird type (label) and background place (other), from ``root``.

    ``root`` is the ``waterbird_complete95_forest2water2`` folder: species subfolders and
    ``metadata.csv`` (columns img_id, img_filename, y, split, place, place_filename; y 1 =
    waterbird, place 1 = water, split 0/1/2 = train/val/test). Group = 2*y + place. Images are
    decoded on access: eval = Resize(size*256/224) + CenterCrop(size) + ImageNet normalisation;
    train adds RandomResizedCrop(0.7-1) + flip when ``augment``. Probe splits are the two halves
    of ``val`` (seeded, stratified by group), as in DFR: fit a probe on one, score on the other.
    """
    image_size = check_image_size(image_size)
    augment = check_bool("augment", augment)
    folder = require_dir(root, "Waterbirds (species folders and metadata.csv)")
    meta_path = require_file(folder / "metadata.csv", f"CSV with columns {', '.join(COLUMNS)}")
    table = read_csv(meta_path, COLUMNS)
    y = int_column(table, "y", (0, 1), meta_path)
    place = int_column(table, "place", (0, 1), meta_path)
    split = int_column(table, "split", (0, 1, 2), meta_path)
    require_rows(meta_path, split, "split")
    names = str_column(table, "img_filename", meta_path)
    check_unique(meta_path, names)
    check_files_exist(folder, names, meta_path)
    train_tf, eval_tf = photo_transforms(image_size, "resize-center", "rrc")
    if not augment:
        train_tf = eval_tf

    def make(idx: np.ndarray) -> SplitData:
        return SplitData(
            labels=y[idx],
            others=place[idx],
            images=FileImages(folder, [names[i] for i in idx]),
            train_transform=train_tf,
            eval_transform=eval_tf,
        )

    splits = {name: make(np.flatnonzero(split == code)) for name, code in SPLIT_CODES.items()}
    val_idx = np.flatnonzero(split == 1)
    first, second = split_halves(2 * y[val_idx] + place[val_idx], np.random.default_rng(seed))
    splits["probe_train"] = make(val_idx[first])
    splits["probe_test"] = make(val_idx[second])
    return SpuriousDataset(
        "waterbirds",
        num_classes=2,
        input_shape=(3, image_size, image_size),
        attribute_names=("waterbird", "water"),
        num_other=2,
        splits=splits,
        class_names=["landbird", "waterbird"],
        other_names=["land", "water"],
        info={"root": str(folder), "probe_splits": "halves of val"},
    )
