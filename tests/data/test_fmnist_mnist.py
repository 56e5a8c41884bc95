"""fmnist_mnist_dominoes: 5 MNIST digits (top, easy) over 5 Fashion-MNIST garments (bottom, label)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from samlens.data import get_dataset
from samlens.data.sources import idx_pair, mnist5k
from samlens.data.stand_ins import TEST_FILE_OFFSET
from samlens.errors import ConfigError

FASHION = "/usr/share/datasets/fashion-mnist"
SIZES = {"train_per_class": 120, "eval_per_class": 40, "probe_per_class": 60}
SPLITS = ("train", "val", "test", "probe_train", "probe_test")


@pytest.fixture(scope="module")
def dominoes():
    return get_dataset("fmnist_mnist_dominoes", seed=1, **SIZES)


def _reference_blocks(images: np.ndarray, pad: int, size: int) -> torch.Tensor:
    # The loader's preprocessing written out: pad, antialiased bilinear resize, 8-bit rounding.
    x = F.pad(torch.as_tensor(images).float() / 255.0, (pad,) * 4)
    x = F.interpolate(x[:, None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x[:, 0].clamp(0, 1).mul(255).round()


def _nearest_class(blocks: torch.Tensor, reference: torch.Tensor, ref_labels: np.ndarray):
    dist = torch.cdist(blocks.flatten(1).double(), reference.flatten(1).double())
    best = dist.min(dim=1)
    return ref_labels[best.indices.numpy()], best.values


def _top_digits(d, split: str) -> np.ndarray:
    """The MNIST class actually drawn in each example's top block (exact nearest source image)."""
    m_images, m_labels = mnist5k()
    top = (d.images(split)[:, 0] * 255).round()[:, :16]
    cls, dist = _nearest_class(top, _reference_blocks(m_images, 2, 16), m_labels)
    assert float(dist.max()) < 1e-6
    return cls


def test_five_classes_shape_and_sizes(dominoes):
    d = dominoes
    assert d.name == "fmnist_mnist_dominoes"
    assert d.num_classes == d.num_other == 5 and d.input_shape == (1, 32, 16)
    assert d.attribute_names == ("fashion", "mnist")
    assert d.class_names == ["tshirt", "trouser", "pullover", "dress", "coat"]
    assert d.other_names == [f"mnist{k}" for k in range(5)]
    assert [len(d.labels(s)) for s in SPLITS] == [600, 200, 200, 300, 300]
    for s in SPLITS:
        x = d.images(s)
        assert x.shape[1:] == (1, 32, 16) and float(x.min()) >= 0 and float(x.max()) <= 1


def test_pairing_digit_k_with_garment_k(dominoes):
    d = dominoes
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(d.others(s), d.labels(s))
        np.testing.assert_array_equal(_top_digits(d, s), d.labels(s))  # digits 0-4 = index
        np.testing.assert_array_equal(np.bincount(d.labels(s)), np.full(5, len(d.labels(s)) // 5))
    # Bottom blocks are the claimed garments (exact nearest official test image).
    f_images, f_labels = idx_pair(FASHION, "test")
    keep = f_labels < 5
    bottom = (d.images("test")[:, 0] * 255).round()[:, 16:]
    cls, dist = _nearest_class(bottom, _reference_blocks(f_images[keep], 2, 16), f_labels[keep])
    assert float(dist.max()) < 1e-6
    np.testing.assert_array_equal(cls, d.labels("test"))
    # Probe splits pair the blocks independently: every (garment, digit) cell equally often.
    for s in ("probe_train", "probe_test"):
        np.testing.assert_array_equal(d.group_counts(s), np.full(25, 12))
        np.testing.assert_array_equal(_top_digits(d, s), d.others(s))


def test_official_test_split_and_val_from_train(dominoes):
    src = {s: dominoes._get(s).extra["label_source"] for s in SPLITS}
    assert (src["test"] >= TEST_FILE_OFFSET).all() and (src["probe_test"] >= TEST_FILE_OFFSET).all()
    for s in ("train", "val", "probe_train"):
        assert (src[s] < TEST_FILE_OFFSET).all(), s
    assert not set(src["train"]) & set(src["val"])
    assert len(set(src["train"])) == len(src["train"])


def test_probe_splits_share_no_source_image_with_train(dominoes):
    train = dominoes._get("train").extra
    for s in ("probe_train", "probe_test"):
        extra = dominoes._get(s).extra
        assert not set(extra["label_source"]) & set(train["label_source"]), s
        assert not set(extra["other_source"]) & set(train["other_source"]), s
    # The recorded Fashion ids are the pixels: probe_train's bottoms are those training images.
    images, _ = idx_pair(FASHION, "train")
    ids = dominoes._get("probe_train").extra["label_source"]
    bottom = (dominoes.images("probe_train")[:, 0] * 255).round()[:, 16:]
    assert torch.equal(bottom, _reference_blocks(images[ids], 2, 16))


def test_correlation_sets_the_agreement():
    d = get_dataset("fmnist_mnist_dominoes", seed=0, correlation=0.9, **SIZES)
    assert abs(d.agreement("train") - 0.9) <= 0.01
    assert abs(np.mean(_top_digits(d, "train") == d.labels("train")) - 0.9) <= 0.01
    assert d.agreement("probe_test") == pytest.approx(0.2)


def test_shuffle_easy_changes_only_train_top_blocks(dominoes):
    shuffled = get_dataset("fmnist_mnist_dominoes", seed=1, shuffle_easy=True, **SIZES)
    np.testing.assert_array_equal(shuffled.group_counts("train"), np.full(25, 24))
    np.testing.assert_array_equal(_top_digits(shuffled, "train"), shuffled.others("train"))
    np.testing.assert_array_equal(shuffled.labels("train"), dominoes.labels("train"))
    assert torch.equal(shuffled.images("train")[:, :, 16:], dominoes.images("train")[:, :, 16:])
    assert not torch.equal(shuffled.images("train")[:, :, :16], dominoes.images("train")[:, :, :16])
    for s in SPLITS[1:]:
        assert torch.equal(shuffled.images(s), dominoes.images(s)), s
        np.testing.assert_array_equal(shuffled.others(s), dominoes.others(s))


def test_deterministic_for_a_seed(dominoes):
    again = get_dataset("fmnist_mnist_dominoes", seed=1, **SIZES)
    other = get_dataset("fmnist_mnist_dominoes", seed=2, **SIZES)
    for s in SPLITS:
        assert torch.equal(again.images(s), dominoes.images(s)), s
        np.testing.assert_array_equal(again.labels(s), dominoes.labels(s))
    assert not torch.equal(other.images("train"), dominoes.images("train"))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"correlation": 1.5}, "correlation must be in [0, 1], got 1.5"),
        ({"train_per_class": 0}, "train_per_class"),
        ({"probe_per_class": -3}, "probe_per_class"),
        ({"block_size": 4}, "block_size must be in 8..128, got 4"),
        ({"mnist_classes": (0, 1, 2)}, "mnist_classes and fashion_classes must have the same length"),
        ({"shuffle_easy": "yes"}, "shuffle_easy"),
        ({"colour": 1}, "dataset 'fmnist_mnist_dominoes': unknown option(s) colour; valid options:"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ConfigError) as err:
        get_dataset("fmnist_mnist_dominoes", **options)
    assert message in str(err.value) and "\n" not in str(err.value)
