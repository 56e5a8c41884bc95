"""The dataset contract: two attributes (label, other), groups, splits, in-memory or file-backed images."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from samlens.errors import ConfigError

Transform = Callable[[Any], torch.Tensor]
STANDARD_SPLITS = ("train", "val", "test")
PROBE_SPLITS = ("probe_train", "probe_test")


@dataclass
class SplitData:
    """One split: integer labels and other-attribute values, plus a way to get image ``i``.

    ``images`` is either a tensor ``[N, C, H, W]`` (decoded once, kept in memory; uint8 or float
    in [0, 1]) or a callable ``i -> image`` (file-backed datasets decode lazily, on access).
    """

    labels: np.ndarray
    others: np.ndarray
    images: torch.Tensor | Callable[[int], Any]
    train_transform: Transform | None = None
    eval_transform: Transform | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.others = np.asarray(self.others, dtype=np.int64)
        if self.labels.shape != self.others.shape or self.labels.ndim != 1:
            raise ValueError("labels and others must be 1-D arrays of equal length")
        if isinstance(self.images, torch.Tensor) and len(self.images) != len(self.labels):
            raise ValueError("images and labels differ in length")


def _as_float(image: torch.Tensor) -> torch.Tensor:
    if image.dtype == torch.uint8:
        return image.float().div_(255.0)
    return image.float()


class SplitView(Dataset):
    """``torch.utils.data.Dataset`` over one split: items ``(image, label, {"other", "group"})``."""

    def __init__(self, data: SplitData, num_other: int, train: bool) -> None:
        self.data = data
        self.num_other = num_other
        self.transform = data.train_transform if train else data.eval_transform

    def __len__(self) -> int:
        return len(self.data.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, dict[str, int]]:
        images = self.data.images
        image = _as_float(images[index]) if isinstance(images, torch.Tensor) else images(index)
        if self.transform is not None:
            image = self.transform(image)
        label = int(self.data.labels[index])
        other = int(self.data.others[index])
        return image, label, {"other": other, "group": label * self.num_other + other}


class SpuriousDataset:
    """A dataset with a label (attribute A) and one other attribute B; group = label * num_other + other.

    See docs/architecture.md for the contract. Subclasses (or factories) fill ``_splits``.
    """

    def __init__(
        self,
        name: str,
        *,
        num_classes: int,
        input_shape: tuple[int, int, int],
        attribute_names: tuple[str, str],
        num_other: int,
        splits: dict[str, SplitData],
        class_names: Sequence[str] | None = None,
        other_names: Sequence[str] | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        missing = [s for s in STANDARD_SPLITS if s not in splits]
        if missing:
            raise ValueError(f"dataset {name!r} lacks splits {missing}")
        self.name = name
        self.num_classes = int(num_classes)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.attribute_names = tuple(attribute_names)
        self.num_other = int(num_other)
        self.class_names = list(class_names) if class_names else [str(c) for c in range(num_classes)]
        self.other_names = list(other_names) if other_names else [str(o) for o in range(num_other)]
        self.info = dict(info or {})
        self._splits = dict(splits)
        order = list(STANDARD_SPLITS) + [s for s in PROBE_SPLITS if s in splits]
        order += [s for s in splits if s not in order]
        self.splits: tuple[str, ...] = tuple(order)
        for split_name, data in self._splits.items():
            self._check_range(split_name, data)

    def _check_range(self, split_name: str, data: SplitData) -> None:
        # Catches loader bugs early; format errors in user files are reported by the loaders themselves.
        for values, bound, what in (
            (data.labels, self.num_classes, "labels"),
            (data.others, self.num_other, "others"),
        ):
            if len(values) and (values.min() < 0 or values.max() >= bound):
                raise ValueError(f"{self.name}/{split_name}: {what} outside [0, {bound})")

    @property
    def group_names(self) -> list[str]:
        a, b = self.attribute_names
        return [f"{a}={c}, {b}={o}" for c in self.class_names for o in self.other_names]

    @property
    def num_groups(self) -> int:
        return self.num_classes * self.num_other

    def _get(self, split: str) -> SplitData:
        if split not in self._splits:
            raise ConfigError(
                f"dataset {self.name!r} has no split {split!r}; valid splits: {', '.join(self.splits)}"
            )
        return self._splits[split]

    def split(self, name: str, train: bool = False) -> SplitView:
        """The split as a ``Dataset``; ``train=True`` applies the train transform (augmentation)."""
        return SplitView(self._get(name), self.num_other, train)

    def labels(self, split: str) -> np.ndarray:
        return self._get(split).labels.copy()

    def others(self, split: str) -> np.ndarray:
        return self._get(split).others.copy()

    def groups(self, split: str) -> np.ndarray:
        data = self._get(split)
        return data.labels * self.num_other + data.others

    def group_counts(self, split: str) -> np.ndarray:
        return np.bincount(self.groups(split), minlength=self.num_groups).astype(np.int64)

    def images(self, split: str) -> torch.Tensor:
        """All images of an in-memory split as a float tensor ``[N, C, H, W]`` (eval transform applied).

        Faster than iterating ``split()`` for small datasets; file-backed datasets raise ``ConfigError``.
        """
        data = self._get(split)
        if not isinstance(data.images, torch.Tensor):
            raise ConfigError(f"dataset {self.name!r} is file-backed; iterate split({split!r}) instead")
        images = _as_float(data.images)
        if data.eval_transform is not None:
            images = torch.stack([data.eval_transform(x) for x in images])
        return images

    def agreement(self, split: str) -> float:
        """Fraction of examples whose other attribute equals the label (the correlation strength)."""
        data = self._get(split)
        return float(np.mean(data.labels == data.others)) if len(data.labels) else float("nan")

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(self._splits[s].labels)}" for s in self.splits)
        return f"SpuriousDataset({self.name!r}, classes={self.num_classes}, {sizes})"
