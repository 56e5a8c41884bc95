"""The stand-ins' probe splits hold no image the network is trained on, and are large.

A probe fitted and scored on features of training images measures how well those images were
fitted, not the representation of new ones. Each check compares the blocks' pixels (an
independent reference) and the recorded source ids (which the pixels also validate).
"""

import hashlib

import numpy as np
import pytest
import torch

from samlens.data import get_dataset
from samlens.data.sources import digits8x8, idx_pair, mnist5k
from samlens.data.stand_ins import TEST_FILE_OFFSET
from samlens.errors import ConfigError

PROBES = ("probe_train", "probe_test")


def _hashes(blocks: torch.Tensor) -> list[bytes]:
    return [hashlib.sha1(b.contiguous().numpy().tobytes()).digest() for b in blocks]


def _blocks(ds, split: str, rows: slice) -> torch.Tensor:
    return ds._get(split).images[:, :, rows]


def _reference(images: np.ndarray, pad: int, size: int) -> torch.Tensor:
    # The loader's preprocessing, written out independently (as in test_dominoes.py).
    x = torch.as_tensor(images).float() / 255.0
    x = torch.nn.functional.pad(x, (pad,) * 4)
    x = torch.nn.functional.interpolate(
        x[:, None], size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )
    return x[:, 0].clamp(0, 1).mul(255).round().to(torch.uint8)


def _assert_disjoint(ds, rows: slice, what: str) -> None:
    train = set(_hashes(_blocks(ds, "train", rows)))
    for split in PROBES:
        shared = train.intersection(_hashes(_blocks(ds, split, rows)))
        assert not shared, f"{len(shared)} {what} blocks of {split} are also in train"


@pytest.fixture(scope="module")
def mnist5k_dominoes():
    return get_dataset("mnist5k_dominoes", seed=1)


@pytest.fixture(scope="module")
def fashion_dominoes():
    return get_dataset("mnist_fashion_dominoes", seed=1)


def test_mnist5k_probe_blocks_are_not_training_images(mnist5k_dominoes):
    d = mnist5k_dominoes
    _assert_disjoint(d, slice(16, 32), "MNIST (hard)")
    for split in ("train", *PROBES):
        extra = d._get(split).extra
        # The ids name the source images whose pixels the blocks hold.
        x = d._get(split).images[:, 0]
        assert torch.equal(x[:, 16:], _reference(mnist5k()[0][extra["label_source"]], 2, 16))
        assert torch.equal(x[:, :16], _reference(digits8x8()[0][extra["other_source"]], 1, 16))
    train = d._get("train").extra
    for split in PROBES:
        extra = d._get(split).extra
        assert not set(extra["label_source"]) & set(train["label_source"])
        assert not set(extra["other_source"]) & set(train["other_source"])
    probe_train, probe_test = (set(d._get(s).extra["label_source"]) for s in PROBES)
    assert not probe_train & probe_test
    # Only 1,000 MNIST 4s and 9s exist offline; train keeps its 600, the probes halve the other 400.
    assert [len(d.labels(s)) for s in d.splits] == [600, 100, 300, 200, 200]


def test_fashion_probe_blocks_are_not_training_images(fashion_dominoes):
    d = fashion_dominoes
    _assert_disjoint(d, slice(32, 64), "Fashion (hard)")
    train = d._get("train").extra
    for split in PROBES:
        extra = d._get(split).extra
        assert not set(extra["label_source"]) & set(train["label_source"])
        assert not set(extra["other_source"]) & set(train["other_source"])
    # probe_test is Fashion's official test split, probe_train official train images left over.
    assert (d._get("probe_test").extra["label_source"] >= TEST_FILE_OFFSET).all()
    ids = d._get("probe_train").extra["label_source"]
    images, _ = idx_pair("/usr/share/datasets/fashion-mnist", "train")
    assert torch.equal(d._get("probe_train").images[:, 0, 32:], _reference(images[ids], 2, 32))


def test_fashion4_probe_blocks_are_not_training_images():
    d = get_dataset("mnist_fashion4_dominoes", seed=1)
    _assert_disjoint(d, slice(16, 32), "Fashion (hard)")
    train = d._get("train").extra
    for split in PROBES:
        assert not set(d._get(split).extra["label_source"]) & set(train["label_source"])
        assert not set(d._get(split).extra["other_source"]) & set(train["other_source"])
        np.testing.assert_array_equal(d.group_counts(split), np.full(16, 250))


def test_fashion_probe_splits_are_large(fashion_dominoes):
    # 2,000 probe-test examples: one run's binomial SE at accuracy 0.8 is 0.009.
    d = fashion_dominoes
    assert [len(d.labels(s)) for s in d.splits] == [4000, 1000, 1000, 2000, 2000]
    for split in PROBES:
        np.testing.assert_array_equal(d.group_counts(split), [500, 500, 500, 500])


@pytest.mark.parametrize("foreground", ["fashion", "mnist5k"])
def test_textured_probe_objects_are_not_training_objects(foreground):
    options = {"foreground": foreground}
    if foreground == "mnist5k":
        options["classes"] = (0, 1)
    d = get_dataset("textured_objects", seed=2, **options)
    train = set(d._get("train").extra["label_source"])
    for split in PROBES:
        assert not train & set(d._get(split).extra["label_source"])
    # Whole images differ too (the backgrounds are fresh crops, the objects new).
    _assert_disjoint(d, slice(None), "image")
    if foreground == "fashion":
        assert [len(d.labels(s)) for s in PROBES] == [2000, 2000]


def test_no_images_left_for_probe_train_is_a_config_error():
    with pytest.raises(ConfigError, match="none are left for probe_train; lower train_per_class"):
        get_dataset("mnist_fashion_dominoes", train_per_class=None)
    with pytest.raises(ConfigError, match="probe_per_class must be a positive integer or null, got 0"):
        get_dataset("mnist_fashion_dominoes", probe_per_class=0)
