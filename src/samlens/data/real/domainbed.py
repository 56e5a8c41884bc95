"""``domainbed``: PACS / VLCS / OfficeHome / TerraIncognita / DomainNet folders with DomainBed's splits."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from samlens.data.base import SplitData, SpuriousDataset
from samlens.data.real.common import (
    check_image_size,
    check_int,
    check_open_fraction,
    load_rgb,
    photo_transforms,
    require_dir,
    scan_image_folder,
    split_halves,
)
from samlens.data.registry import register_dataset
from samlens.errors import ConfigError, DatasetFormatError

# Folder names as distributed by DomainBed's download script (num_classes, domains).
LAYOUTS = {
    "PACS": (7, ("art_painting", "cartoon", "photo", "sketch")),
    "VLCS": (5, ("Caltech101", "LabelMe", "SUN09", "VOC2007")),
    "OfficeHome": (65, ("Art", "Clipart", "Product", "Real World")),
    "TerraIncognita": (10, ("location_100", "location_38", "location_43", "location_46")),
    "DomainNet": (345, ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")),
}


def seed_hash(*args: object) -> int:
    """DomainBed's ``misc.seed_hash``: an int seed derived from the arguments' repr."""
    return int(hashlib.md5(str(args).encode("utf-8")).hexdigest(), 16) % (2**31)


def in_out_split(n: int, holdout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """DomainBed's ``split_dataset``: shuffle ``range(n)`` with RandomState(seed); first part = out."""
    keys = list(range(n))
    np.random.RandomState(seed).shuffle(keys)
    n_out = int(n * holdout_fraction)
    return np.array(keys[n_out:], dtype=np.int64), np.array(keys[:n_out], dtype=np.int64)


def _listed(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names[:10]) + (
        f" and {len(names) - 10} more" if len(names) > 10 else ""
    )


class _Files:
    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def __call__(self, index: int):
        return load_rgb(self.paths[index])


@register_dataset("domainbed")
def domainbed(
    root: str | Path | None = None,
    seed: int = 0,
    *,
    dataset: str = "PACS",
    test_domain: str = "sketch",
    trial_seed: int = 0,
    holdout_fraction: float = 0.2,
    image_size: int = 224,
) -> SpuriousDataset:
    """A DomainBed image dataset (``root/<dataset>/<domain>/<class>/<image>``); other attribute = domain.

    Domains are the sorted domain folders (each listed as torchvision's ImageFolder lists it, with
    its structure checked by ``scan_image_folder``; every domain must have the same class folders).
    Each domain is split into ``out`` (``holdout_fraction``, default 20%) and ``in`` with DomainBed's
    seed ``seed_hash(trial_seed, domain_index)``.
    Splits: train = ``in`` of the training domains (with DomainBed's augmentation), val = ``out``
    of the training domains (training-domain validation), test = ``in`` of ``test_domain``,
    test_out = ``out`` of ``test_domain``; probe_train / probe_test = two halves (seeded,
    stratified by group) of the ``out`` splits of all domains. Group = class * num_domains + domain.
    """
    if not isinstance(dataset, str) or dataset not in LAYOUTS:
        raise ConfigError(f"unknown DomainBed dataset {dataset!r}; valid: {', '.join(LAYOUTS)}")
    holdout_fraction = check_open_fraction("holdout_fraction", holdout_fraction)
    trial_seed = check_int("trial_seed", trial_seed, 0)
    image_size = check_image_size(image_size)
    num_classes, expected_domains = LAYOUTS[dataset]
    base = require_dir(root, f"DomainBed data (a {dataset}/ folder)")
    folder = require_dir(base / dataset, f"one folder per domain: {', '.join(expected_domains)}")
    domains = sorted(f.name for f in folder.iterdir() if f.is_dir())
    if tuple(domains) != tuple(sorted(expected_domains)):
        raise DatasetFormatError(f"{folder}: domain folders {domains}; expected {sorted(expected_domains)}")
    if test_domain not in domains:
        raise ConfigError(
            f"test_domain {test_domain!r} is not a {dataset} domain; valid: {', '.join(domains)}"
        )
    test_index = domains.index(test_domain)
    classes = None
    pieces: dict[str, list[tuple[list[str], np.ndarray, np.ndarray]]] = {}
    for d, domain in enumerate(domains):
        found, samples = scan_image_folder(folder / domain)
        if classes is None:
            classes = found
            if len(classes) != num_classes:
                raise DatasetFormatError(
                    f"{folder / domain}: {len(classes)} class folders; expected {num_classes} "
                    f"(found {_listed(classes)})"
                )
        elif found != classes:
            missing = [c for c in classes if c not in found]
            extra = [c for c in found if c not in classes]
            diff = "; ".join(
                f"{what} {_listed(names)}"
                for what, names in (("missing", missing), ("extra", extra))
                if names
            )
            raise DatasetFormatError(
                f"{folder / domain}: class folders differ from {folder / domains[0]} ({diff})"
            )
        if not samples:
            # An empty domain would silently vanish from train/val/test and from the groups' counts.
            raise DatasetFormatError(
                f"{folder / domain}: no images in its class folders; expected "
                "<class>/<image> files (JPEG/PNG) in every domain"
            )
        paths = [p for p, _ in samples]
        targets = np.array([t for _, t in samples], dtype=np.int64)
        in_idx, out_idx = in_out_split(len(paths), holdout_fraction, seed_hash(trial_seed, d))
        for part, idx in (("in", in_idx), ("out", out_idx)):
            key = f"{'test' if d == test_index else 'train'}_{part}"
            pieces.setdefault(key, []).append(([paths[i] for i in idx], targets[idx], np.full(len(idx), d)))
            pieces.setdefault(f"all_{part}", []).append(
                ([paths[i] for i in idx], targets[idx], np.full(len(idx), d))
            )

    def join(key: str) -> tuple[list[str], np.ndarray, np.ndarray]:
        parts = pieces.get(key, [])
        paths = [p for ps, _, _ in parts for p in ps]
        labels = np.concatenate([t for _, t, _ in parts]) if parts else np.zeros(0, np.int64)
        others = np.concatenate([o for _, _, o in parts]) if parts else np.zeros(0, np.int64)
        return paths, labels, others

    train_tf, eval_tf = photo_transforms(image_size, "resize", "domainbed")

    def make(paths: list[str], labels: np.ndarray, others: np.ndarray, augment: bool = False) -> SplitData:
        return SplitData(labels, others, _Files(paths), train_tf if augment else eval_tf, eval_tf)

    splits = {
        "train": make(*join("train_in"), augment=True),
        "val": make(*join("train_out")),
        "test": make(*join("test_in")),
        "test_out": make(*join("test_out")),
    }
    paths, labels, others = join("all_out")
    first, second = split_halves(labels * len(domains) + others, np.random.default_rng(seed))
    splits["probe_train"] = make([paths[i] for i in first], labels[first], others[first])
    splits["probe_test"] = make([paths[i] for i in second], labels[second], others[second])
    return SpuriousDataset(
        "domainbed",
        num_classes=num_classes,
        input_shape=(3, image_size, image_size),
        attribute_names=("class", "domain"),
        num_other=len(domains),
        splits=splits,
        class_names=list(classes),
        other_names=domains,
        info={"dataset": dataset, "test_domain": test_domain, "trial_seed": trial_seed},
    )
