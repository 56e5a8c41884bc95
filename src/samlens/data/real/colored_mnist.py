"""``colored_mnist``: DomainBed's ColoredMNIST (three environments) built from MNIST IDX files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from samlens.data.base import SplitData, SpuriousDataset
from samlens.data.idx import load_mnist_split
from samlens.data.real.common import check_int, check_open_fraction, require_dir
from samlens.data.real.domainbed import in_out_split, seed_hash
from samlens.data.registry import register_dataset
from samlens.errors import ConfigError

ENVIRONMENTS = (0.1, 0.2, 0.9)


def color_environment(
    digits: torch.Tensor, images: torch.Tensor, flip: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DomainBed's ``color_dataset``: 2x-subsampled images, noisy binary label, colour = label xor noise.

    Returns float images [N, 2, 14, 14] in [0, 1], labels and colours (int64).
    """
    images = images.reshape(-1, 28, 28)[:, ::2, ::2]
    labels = (digits < 5).long()
    labels = labels ^ (torch.rand(len(labels), generator=generator) < 0.25).long()
    colors = labels ^ (torch.rand(len(labels), generator=generator) < flip).long()
    stacked = torch.stack([images, images], dim=1).clone()
    stacked[torch.arange(len(stacked)), 1 - colors] = 0
    return stacked.float().div_(255.0), labels, colors


@register_dataset("colored_mnist")
def colored_mnist(
    root: str | Path | None = None,
    seed: int = 0,
    *,
    test_env: int = 2,
    trial_seed: int = 0,
    holdout_fraction: float = 0.2,
) -> SpuriousDataset:
    """DomainBed's ColoredMNIST from MNIST IDX files in ``root`` (or ``root/MNIST/raw``); other = colour.

    As in DomainBed: MNIST train + test are concatenated and shuffled (``seed``), dealt round-robin
    into three environments in which the colour disagrees with the label w.p. 0.1, 0.2, 0.9; the
    label is (digit < 5) flipped w.p. 0.25; images are 2x14x14 (DomainBed subsamples 28x28 by 2,
    although it declares 2x28x28). Each environment is split in/out with seed_hash(trial_seed, env).
    Splits: train = ``in`` of the two training environments, val = their ``out``, test = ``in``
    of ``test_env`` (default 2, the 90% one), test_out = its ``out``. Group = 2*label + colour.
    """
    if isinstance(test_env, bool) or test_env not in range(len(ENVIRONMENTS)):
        raise ConfigError(f"test_env must be 0, 1 or 2, got {test_env!r}")
    holdout_fraction = check_open_fraction("holdout_fraction", holdout_fraction)
    trial_seed = check_int("trial_seed", trial_seed, 0)
    folder = require_dir(root, "MNIST IDX files (train-images-idx3-ubyte[.gz], ...)")
    train_x, train_y = load_mnist_split(folder, "train")
    test_x, test_y = load_mnist_split(folder, "test")
    images = torch.as_tensor(np.concatenate([train_x, test_x]))
    digits = torch.as_tensor(np.concatenate([train_y, test_y]))
    generator = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(len(digits), generator=generator)
    images, digits = images[order], digits[order]
    parts: dict[str, list[tuple[torch.Tensor, np.ndarray, np.ndarray]]] = {}
    for e, flip in enumerate(ENVIRONMENTS):
        x, y, c = color_environment(
            digits[e :: len(ENVIRONMENTS)], images[e :: len(ENVIRONMENTS)], flip, generator
        )
        in_idx, out_idx = in_out_split(len(y), holdout_fraction, seed_hash(trial_seed, e))
        prefix = "test" if e == test_env else "train"
        for name, idx in (("in", in_idx), ("out", out_idx)):
            parts.setdefault(f"{prefix}_{name}", []).append((x[idx], y.numpy()[idx], c.numpy()[idx]))

    def make(key: str) -> SplitData:
        xs, ys, cs = zip(*parts[key])
        return SplitData(np.concatenate(ys), np.concatenate(cs), torch.cat(xs))

    splits = {"train": make("train_in"), "val": make("train_out"), "test": make("test_in")}
    splits["test_out"] = make("test_out")
    return SpuriousDataset(
        "colored_mnist",
        num_classes=2,
        input_shape=(2, 14, 14),
        attribute_names=("digit_lt_5", "color"),
        num_other=2,
        splits=splits,
        class_names=["digit>=5", "digit<5"],
        other_names=["red", "green"],
        info={"test_env": test_env, "environments": ENVIRONMENTS},
    )
