"""A tiny in-memory two-attribute dataset registered for the runner tests."""

from __future__ import annotations

import numpy as np
import torch

from samlens.data import DATASETS, SplitData, SpuriousDataset, register_dataset

NAME = "tiny_test_blobs"


def _split(rng: np.random.Generator, n: int, scale: float, agreement: float = 0.9) -> SplitData:
    labels = np.arange(n) % 2
    others = np.where(rng.random(n) < agreement, labels, 1 - labels)
    others[:4] = [0, 0, 1, 1]  # every group present, even in tiny splits
    x = rng.normal(size=(n, 1, 4, 4)).astype(np.float32) * 0.5
    x[:, 0, 0, :] += scale * (2 * labels[:, None] - 1)
    x[:, 0, 1, :] += 2 * scale * (2 * others[:, None] - 1)
    return SplitData(labels, others, torch.from_numpy(x))


def tiny_blobs(root=None, seed: int = 0, *, n: int = 64, scale: float = 1.0) -> SpuriousDataset:
    """Gaussian blobs: label and a 90%-correlated other attribute, each shifting one pixel row."""
    rng = np.random.default_rng(seed % 2**32)
    splits = {s: _split(rng, n if s == "train" else n // 2, scale) for s in ("train", "val", "test")}
    # Probe splits: the other attribute independent of the label, as probes require.
    splits.update({s: _split(rng, n // 2, scale, agreement=0.5) for s in ("probe_train", "probe_test")})
    return SpuriousDataset(
        NAME,
        num_classes=2,
        input_shape=(1, 4, 4),
        attribute_names=("label", "other"),
        num_other=2,
        splits=splits,
    )


if NAME not in DATASETS:
    register_dataset(NAME)(tiny_blobs)
