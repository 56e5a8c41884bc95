"""Offline dominoes: determinism, correlation strength, balance, and that each block carries its label."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from samlens.data import get_dataset
from samlens.data.sources import digits8x8, idx_pair, mnist5k
from samlens.errors import ConfigError


@pytest.fixture(scope="module")
def dominoes():
    return get_dataset("mnist5k_dominoes", seed=3)


def _reference_blocks(images: np.ndarray, pad: int, size: int) -> torch.Tensor:
    # Written out here (not imported) so that the test checks the loader's preprocessing.
    x = torch.as_tensor(images).float() / 255.0
    x = F.pad(x, (pad,) * 4)
    x = F.interpolate(x[:, None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x[:, 0].clamp(0, 1).mul(255).round().flatten(1)


def _nearest_class(blocks: torch.Tensor, reference: torch.Tensor, ref_labels: np.ndarray):
    d = torch.cdist(blocks.flatten(1).double(), reference.double())
    best = d.argmin(dim=1)
    return ref_labels[best.numpy()], d.min(dim=1).values


def test_contract_members(dominoes):
    d = dominoes
    assert d.splits == ("train", "val", "test", "probe_train", "probe_test")
    assert d.num_classes == 2 and d.num_other == 2 and d.num_groups == 4
    assert d.input_shape == (1, 32, 16)
    assert d.attribute_names == ("mnist", "digits8x8")
    assert len(d.group_names) == 4
    image, label, attrs = d.split("train", train=True)[5]
    assert image.shape == (1, 32, 16) and image.dtype == torch.float32
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    assert label == d.labels("train")[5] and attrs["other"] == d.others("train")[5]
    assert attrs["group"] == label * 2 + attrs["other"]
    for s in d.splits:
        assert d.labels(s).dtype == np.int64 and d.groups(s).dtype == np.int64
        np.testing.assert_array_equal(d.groups(s), d.labels(s) * 2 + d.others(s))
        np.testing.assert_array_equal(d.group_counts(s), np.bincount(d.groups(s), minlength=4))
    assert [len(d.labels(s)) for s in ("train", "val", "test")] == [600, 100, 300]


def test_redundant_train_and_independent_probe_splits(dominoes):
    d = dominoes
    for s in ("train", "val", "test"):
        assert d.agreement(s) == 1.0
        counts = d.group_counts(s)
        assert counts[1] == counts[2] == 0 and counts[0] == counts[3]
    for s in ("probe_train", "probe_test"):
        counts = d.group_counts(s)
        assert (counts == counts[0]).all(), counts


def test_blocks_carry_the_claimed_labels(dominoes):
    d = dominoes
    m_images, m_labels = mnist5k()
    g_images, g_labels = digits8x8()
    mnist_ref = _reference_blocks(m_images, 2, 16)
    digit_ref = _reference_blocks(g_images, 1, 16)
    for split in ("train", "probe_test"):
        x = (d.images(split)[:, 0] * 255).round()
        top, bottom = x[:, :16], x[:, 16:]
        cls, dist = _nearest_class(bottom, mnist_ref, m_labels)
        assert float(dist.max()) < 1e-6
        np.testing.assert_array_equal(cls, np.array([4, 9])[d.labels(split)])
        cls, dist = _nearest_class(top, digit_ref, g_labels)
        assert float(dist.max()) < 1e-6
        np.testing.assert_array_equal(cls, np.array([0, 1])[d.others(split)])


def test_deterministic_for_a_seed(dominoes):
    again = get_dataset("mnist5k_dominoes", seed=3)
    other = get_dataset("mnist5k_dominoes", seed=4)
    for s in dominoes.splits:
        assert torch.equal(again.images(s), dominoes.images(s))
        np.testing.assert_array_equal(again.others(s), dominoes.others(s))
    assert not torch.equal(other.images("train"), dominoes.images("train"))


@pytest.mark.parametrize("strength", [0.9, 0.75, 0.5])
def test_measured_correlation_matches_request(strength):
    d = get_dataset("mnist5k_dominoes", correlation=strength)
    for s in ("train", "val", "test"):
        assert abs(d.agreement(s) - strength) <= 0.01
        # within each class too, up to one example of rounding
        for c in range(2):
            mask = d.labels(s) == c
            assert abs(np.mean(d.others(s)[mask] == c) - strength) <= 1.0 / mask.sum() + 1e-9


def test_fashion_dominoes_blocks_and_balance():
    sizes = {"train_per_class": 300, "eval_per_class": 100, "probe_per_class": 200}
    d = get_dataset("mnist_fashion_dominoes", correlation=0.8, **sizes)
    assert d.input_shape == (1, 64, 32)
    assert d.attribute_names == ("fashion", "mnist")
    assert abs(d.agreement("train") - 0.8) <= 0.01
    np.testing.assert_array_equal(d.group_counts("test"), [80, 20, 20, 80])
    np.testing.assert_array_equal(d.group_counts("probe_test"), [100, 100, 100, 100])
    np.testing.assert_array_equal(d.group_counts("train"), [240, 60, 60, 240])
    from samlens.data.sources import idx_pair

    f_images, f_labels = idx_pair("/usr/share/datasets/fashion-mnist", "test")
    keep = np.isin(f_labels, [2, 4])
    ref = _reference_blocks(f_images[keep], 2, 32)
    x = (d.images("test")[:, 0] * 255).round()
    cls, dist = _nearest_class(x[:, 32:], ref, f_labels[keep])
    assert float(dist.max()) < 1e-6
    np.testing.assert_array_equal(cls, np.array([2, 4])[d.labels("test")])
    m_images, m_labels = mnist5k()
    cls, dist = _nearest_class(x[:, :32], _reference_blocks(m_images, 2, 32), m_labels)
    assert float(dist.max()) < 1e-6
    np.testing.assert_array_equal(cls, np.array([0, 1])[d.others("test")])


@pytest.mark.parametrize(
    "options, message",
    [
        ({"correlation": 1.5}, "correlation must be in [0, 1], got 1.5"),
        ({"mnist_classes": (4, 4)}, "mnist_classes must be >= 2 distinct class ids in 0..9, got [4, 4]"),
        ({"mnist_classes": (1, 2, 3)}, "mnist_classes and digit_classes must have the same length"),
        ({"block_size": 4}, "block_size must be in 8..128, got 4"),
        ({"colour": 1}, "dataset 'mnist5k_dominoes': unknown option(s) colour; valid options:"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ConfigError) as err:
        get_dataset("mnist5k_dominoes", **options)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_packaged_dataset_refuses_root(tmp_path):
    with pytest.raises(ConfigError, match="mnist5k_dominoes uses packaged data only; do not pass root"):
        get_dataset("mnist5k_dominoes", root=tmp_path)


def test_unknown_dataset_and_split(dominoes):
    with pytest.raises(ConfigError, match="unknown dataset 'nope'; valid choices: .*mnist5k_dominoes"):
        get_dataset("nope")
    with pytest.raises(ConfigError, match="has no split 'holdout'; valid splits: train, val, test"):
        dominoes.labels("holdout")


def test_dataloader_collates_items(dominoes):
    loader = torch.utils.data.DataLoader(dominoes.split("probe_train"), batch_size=16, shuffle=False)
    images, labels, attrs = next(iter(loader))
    assert images.shape == (16, 1, 32, 16) and labels.dtype == torch.int64
    assert attrs["group"].tolist() == (labels * 2 + attrs["other"]).tolist()
    assert labels.tolist() == dominoes.labels("probe_train")[:16].tolist()


def test_missing_fashion_folder(tmp_path):
    from samlens.errors import DatasetFormatError

    with pytest.raises(DatasetFormatError) as err:
        get_dataset("mnist_fashion_dominoes", root=tmp_path / "fm")
    assert str(err.value).startswith(
        f"{tmp_path / 'fm'}: Fashion-MNIST directory not found; expected the IDX files"
    )
    (tmp_path / "fm").mkdir()
    with pytest.raises(DatasetFormatError) as err:
        get_dataset("mnist_fashion_dominoes", root=tmp_path / "fm")
    assert str(err.value).startswith(f"{tmp_path / 'fm' / 'train-images-idx3-ubyte'}: file not found")


def _easy_block_classes(d, split: str) -> np.ndarray:
    """The 8x8-digit class actually drawn in each example's top block (nearest source image)."""
    g_images, g_labels = digits8x8()
    top = (d.images(split)[:, 0] * 255).round()[:, :16]
    cls, dist = _nearest_class(top, _reference_blocks(g_images, 1, 16), g_labels)
    assert float(dist.max()) < 1e-6
    return cls


def test_shuffle_easy_makes_the_easy_block_uninformative_in_train_only(dominoes):
    shuffled = get_dataset("mnist5k_dominoes", seed=3, shuffle_easy=True)
    assert shuffled.info["shuffle_easy"] is True and dominoes.info["shuffle_easy"] is False
    # The top block's pixels, not just the recorded attribute, are independent of the label.
    easy = _easy_block_classes(shuffled, "train")
    np.testing.assert_array_equal(easy, np.array([0, 1])[shuffled.others("train")])
    labels = shuffled.labels("train")
    assert np.mean(easy == np.array([0, 1])[labels]) == 0.5
    np.testing.assert_array_equal(shuffled.group_counts("train"), [150, 150, 150, 150])
    # The hard (bottom) block and the labels are those of the redundant dataset.
    np.testing.assert_array_equal(labels, dominoes.labels("train"))
    assert torch.equal(shuffled.images("train")[:, :, 16:], dominoes.images("train")[:, :, 16:])
    for s in ("val", "test", "probe_train", "probe_test"):
        assert torch.equal(shuffled.images(s), dominoes.images(s)), s
        np.testing.assert_array_equal(shuffled.others(s), dominoes.others(s))
    assert dominoes.agreement("val") == shuffled.agreement("val") == 1.0


def test_shuffle_easy_on_fashion_dominoes():
    sizes = {"train_per_class": 300, "eval_per_class": 100}
    plain = get_dataset("mnist_fashion_dominoes", **sizes)
    shuffled = get_dataset("mnist_fashion_dominoes", shuffle_easy=True, **sizes)
    np.testing.assert_array_equal(shuffled.group_counts("train"), [150, 150, 150, 150])
    m_images, m_labels = mnist5k()
    top = (shuffled.images("train")[:, 0] * 255).round()[:, :32]
    cls, dist = _nearest_class(top, _reference_blocks(m_images, 2, 32), m_labels)
    assert float(dist.max()) < 1e-6
    np.testing.assert_array_equal(cls, np.array([0, 1])[shuffled.others("train")])
    assert torch.equal(shuffled.images("train")[:, :, 32:], plain.images("train")[:, :, 32:])
    for s in ("val", "test", "probe_train", "probe_test"):
        assert torch.equal(shuffled.images(s), plain.images(s)), s


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_shuffle_easy_must_be_a_boolean(value):
    with pytest.raises(ConfigError, match=f"shuffle_easy must be true or false, got {value!r}"):
        get_dataset("mnist5k_dominoes", shuffle_easy=value)


FASHION4 = {
    "mnist_classes": [0, 1, 2, 3],
    "fashion_classes": [0, 2, 4, 6],
    "block_size": 16,
    "train_per_class": 1000,
    "eval_per_class": 500,
    "probe_per_class": 1000,
}


def test_fashion4_dominoes_is_the_four_way_fashion_setting():
    d = get_dataset("mnist_fashion4_dominoes", seed=2)
    assert d.name == "mnist_fashion4_dominoes"
    assert d.input_shape == (1, 32, 16) and d.num_classes == d.num_other == 4
    assert d.class_names == ["tshirt", "pullover", "coat", "shirt"]
    assert d.other_names == ["mnist0", "mnist1", "mnist2", "mnist3"]
    assert [len(d.labels(s)) for s in d.splits] == [4000, 2000, 2000, 4000, 4000]
    assert d.agreement("train") == 1.0
    np.testing.assert_array_equal(d.group_counts("probe_test"), np.full(16, 250))
    same = get_dataset("mnist_fashion_dominoes", seed=2, **FASHION4)
    for s in d.splits:
        assert torch.equal(d.images(s), same.images(s)), s
        np.testing.assert_array_equal(d.others(s), same.others(s))
    # Bottom blocks are the claimed Fashion classes (nearest official test image, exact match).
    f_images, f_labels = idx_pair("/usr/share/datasets/fashion-mnist", "test")
    keep = np.isin(f_labels, FASHION4["fashion_classes"])
    x = (d.images("probe_test")[:500, 0] * 255).round()
    cls, dist = _nearest_class(x[:, 16:], _reference_blocks(f_images[keep], 2, 16), f_labels[keep])
    assert float(dist.max()) < 1e-6
    np.testing.assert_array_equal(cls, np.array([0, 2, 4, 6])[d.labels("probe_test")[:500]])
    hard_only = get_dataset("mnist_fashion4_dominoes", seed=2, shuffle_easy=True)
    np.testing.assert_array_equal(hard_only.group_counts("train"), np.full(16, 250))
    assert torch.equal(hard_only.images("probe_train"), d.images("probe_train"))
