"""``celeba``: aligned CelebA with the official attribute and partition files (text or Kaggle CSV)."""

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
    read_text,
    require_dir,
    require_rows,
    split_halves,
    str_column,
)
from samlens.data.registry import register_dataset
from samlens.errors import ConfigError, DatasetFormatError
from samlens.validate import check_bool

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


def _read_attr_txt(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Official ``list_attr_celeba.txt``: count line, attribute-name line, then ``file v1 ... v40``.

    torchvision's CelebA reader also needs the identity, bbox and landmark files and checks
    their MD5 sums; samlens only needs these two files, so it reads them itself.
    """
    lines = [line for line in read_text(path).splitlines() if line.strip()]
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise DatasetFormatError(f"{path}: expected an image count on line 1 and attribute names on line 2")
    attributes = lines[1].split()
    rows = [line.split() for line in lines[2:]]
    if int(lines[0]) != len(rows):
        raise DatasetFormatError(f"{path}: line 1 says {int(lines[0])} images but {len(rows)} rows follow")
    for number, row in enumerate(rows, start=3):
        if len(row) != len(attributes) + 1:
            got = len(row) - 1
            raise DatasetFormatError(f"{path}: line {number} has {got} values; expected {len(attributes)}")
    for number, row in enumerate(rows, start=3):
        bad = [v for v in row[1:] if v not in ("1", "-1")]
        if bad:
            raise DatasetFormatError(
                f"{path}: line {number} has attribute value {bad[0]!r}; expected -1 or 1"
            )
    values = np.array([[int(v) for v in row[1:]] for row in rows], dtype=np.int64)
    names = [row[0] for row in rows]
    check_unique(path, names)
    return attributes, names, values.reshape(len(rows), len(attributes))


def _read_attributes(folder: Path) -> tuple[Path, list[str], list[str], np.ndarray]:
    txt, csv = folder / "list_attr_celeba.txt", folder / "list_attr_celeba.csv"
    if txt.is_file():
        return (txt, *_read_attr_txt(txt))
    if csv.is_file():
        table = read_csv(csv, ["image_id"])
        attributes = [c for c in table.columns if c != "image_id"]
        if not attributes:
            raise DatasetFormatError(
                f"{csv}: no attribute columns; expected image_id plus 40 columns of -1/1"
            )
        values = np.stack([int_column(table, a, (-1, 1), csv) for a in attributes], axis=1)
        names = str_column(table, "image_id", csv)
        check_unique(csv, names)
        return csv, attributes, names, values.astype(np.int64)
    raise DatasetFormatError(f"{txt}: file not found; expected list_attr_celeba.txt (or the Kaggle .csv)")


def _read_partition(folder: Path) -> tuple[Path, dict[str, int]]:
    txt, csv = folder / "list_eval_partition.txt", folder / "list_eval_partition.csv"
    if txt.is_file():
        rows = [line.split() for line in read_text(txt).splitlines() if line.strip()]
        for number, row in enumerate(rows, start=1):
            if len(row) != 2 or row[1] not in ("0", "1", "2"):
                raise DatasetFormatError(
                    f"{txt}: line {number} is {' '.join(row)!r}; expected '<image> <0|1|2>'"
                )
        check_unique(txt, [row[0] for row in rows])
        return txt, {name: int(code) for name, code in rows}
    if csv.is_file():
        table = read_csv(csv, ["image_id", "partition"])
        codes = int_column(table, "partition", (0, 1, 2), csv)
        return csv, dict(zip(str_column(table, "image_id", csv), codes.tolist()))
    raise DatasetFormatError(f"{txt}: file not found; expected list_eval_partition.txt (or the Kaggle .csv)")


@register_dataset("celeba")
def celeba(
    root: str | Path | None = None,
    seed: int = 0,
    *,
    target: str = "Blond_Hair",
    other: str = "Male",
    image_size: int = 224,
    augment: bool = True,
) -> SpuriousDataset:
    """CelebA: ``target`` attribute (label, default Blond_Hair) and ``other`` (default Male).

    ``root`` holds ``img_align_celeba/`` and ``list_attr_celeba.txt`` + ``list_eval_partition.txt``
    (official text files) or their Kaggle CSV versions (``image_id`` + 40 columns of +-1;
    ``image_id, partition``); torchvision's ``root/celeba`` layout also works. Labels are
    attribute == 1; group = 2*target + other. Eval transform CenterCrop(178) + Resize(size) +
    ImageNet normalisation; train adds RandomResizedCrop(0.7-1) + flip. Probe splits are the two
    halves of ``val`` (seeded, stratified by group).
    """
    image_size = check_image_size(image_size)
    augment = check_bool("augment", augment)
    folder = require_dir(root, "CelebA (img_align_celeba/, list_attr_celeba.txt, list_eval_partition.txt)")
    if (folder / "celeba").is_dir() and not (folder / "img_align_celeba").is_dir():
        folder = folder / "celeba"
    images_dir = require_dir(folder / "img_align_celeba", "the aligned CelebA JPEGs")
    attr_path, attributes, names, values = _read_attributes(folder)
    if not names:
        raise DatasetFormatError(f"{attr_path}: no data rows; expected one row per image")
    for option, attribute in (("target", target), ("other", other)):
        if attribute not in attributes:
            raise ConfigError(
                f"{option} {attribute!r} is not a column of {attr_path}; valid: {', '.join(attributes)}"
            )
    columns = [attributes.index(target), attributes.index(other)]
    bad_rows = np.flatnonzero(~np.isin(values[:, columns], (-1, 1)).all(axis=1))
    if len(bad_rows):
        raise DatasetFormatError(
            f"{attr_path}: image {names[bad_rows[0]]} has a {target}/{other} value out of range; "
            "expected -1 or 1"
        )
    part_path, partition = _read_partition(folder)
    missing = [n for n in names if n not in partition]
    if missing:
        raise DatasetFormatError(f"{part_path}: no partition for image {missing[0]} (listed in {attr_path})")
    check_files_exist(images_dir, names, attr_path)
    labels = (values[:, columns[0]] == 1).astype(np.int64)
    others = (values[:, columns[1]] == 1).astype(np.int64)
    codes = np.array([partition[n] for n in names], dtype=np.int64)
    require_rows(part_path, codes, "partition")
    train_tf, eval_tf = photo_transforms(image_size, "center178", "rrc")
    if not augment:
        train_tf = eval_tf

    def make(idx: np.ndarray) -> SplitData:
        return SplitData(
            labels[idx], others[idx], FileImages(images_dir, [names[i] for i in idx]), train_tf, eval_tf
        )

    splits = {name: make(np.flatnonzero(codes == code)) for name, code in SPLIT_CODES.items()}
    val_idx = np.flatnonzero(codes == 1)
    first, second = split_halves(2 * labels[val_idx] + others[val_idx], np.random.default_rng(seed))
    splits["probe_train"], splits["probe_test"] = make(val_idx[first]), make(val_idx[second])
    return SpuriousDataset(
        "celeba",
        num_classes=2,
        input_shape=(3, image_size, image_size),
        attribute_names=(target.lower(), other.lower()),
        num_other=2,
        splits=splits,
        class_names=[f"not_{target.lower()}", target.lower()],
        other_names=[f"not_{other.lower()}", other.lower()],
        info={"root": str(folder), "attributes_file": str(attr_path), "probe_splits": "halves of val"},
    )
