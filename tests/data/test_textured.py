"""textured_objects: correlation, within-class balance, determinism, and that attributes match the pixels."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from samlens.data import get_dataset
from samlens.errors import ConfigError

SMALL = {"foreground": "mnist5k", "classes": (0, 1), "image_size": 32}


@pytest.fixture(scope="module")
def digits_on_textures():
    return get_dataset("textured_objects", seed=1, **SMALL)


def test_train_correlation_and_eval_balance(digits_on_textures):
    d = digits_on_textures
    assert d.attribute_names == ("object", "texture") and d.other_names == ["grass", "brick"]
    assert abs(d.agreement("train") - 0.95) <= 0.01
    for s in ("val", "test", "probe_train", "probe_test"):
        labels, others = d.labels(s), d.others(s)
        for c in range(2):
            assert abs(np.mean(others[labels == c] == 0) - 0.5) <= 1.0 / np.sum(labels == c)
    assert np.array_equal(d.group_counts("train"), [285, 15, 15, 285])


def test_requested_correlation_is_measured():
    d = get_dataset("textured_objects", correlation=0.8, **SMALL)
    assert abs(d.agreement("train") - 0.8) <= 0.01


def _features(x: torch.Tensor) -> np.ndarray:
    return x.flatten(1).numpy()


def _corner_texture_stats(x: torch.Tensor) -> np.ndarray:
    # MNIST strokes stay clear of the 6-pixel corners, so these show only background texture;
    # brightness, contrast and gradient energy tell grass (busy) from brick (flat with lines).
    feats = []
    for p in (x[:, :6, :6], x[:, -6:, -6:], x[:, :6, -6:], x[:, -6:, :6]):
        dx = (p[:, :, 1:] - p[:, :, :-1]).abs().mean((1, 2))
        dy = (p[:, 1:] - p[:, :-1]).abs().mean((1, 2))
        feats += [p.mean((1, 2)), p.std((1, 2)), dx, dy]
    return torch.stack(feats, 1).numpy()


def test_attributes_match_the_pixels(digits_on_textures):
    d = digits_on_textures
    train, test = d.images("probe_train")[:, 0], d.images("probe_test")[:, 0]
    texture_probe = LogisticRegression(max_iter=3000).fit(
        _corner_texture_stats(train), d.others("probe_train")
    )
    assert texture_probe.score(_corner_texture_stats(test), d.others("probe_test")) > 0.95
    object_probe = LogisticRegression(max_iter=2000).fit(_features(train), d.labels("probe_train"))
    assert object_probe.score(_features(test), d.labels("probe_test")) > 0.9


def test_deterministic_for_a_seed(digits_on_textures):
    again = get_dataset("textured_objects", seed=1, **SMALL)
    assert torch.equal(again.images("train"), digits_on_textures.images("train"))
    assert not torch.equal(
        get_dataset("textured_objects", seed=2, **SMALL).images("train"), again.images("train")
    )


def test_fashion_foreground_defaults():
    d = get_dataset("textured_objects", train_per_class=200, eval_per_class=40)
    assert d.class_names == ["sneaker", "boot"] and d.input_shape == (1, 32, 32)
    assert np.array_equal(d.group_counts("train"), [190, 10, 10, 190])
    assert np.array_equal(d.group_counts("test"), [20, 20, 20, 20])


@pytest.mark.parametrize(
    "options, message",
    [
        ({"textures": ("grass", "sand")}, "textures must be 2 distinct names from grass, gravel, brick"),
        ({"foreground": "cifar"}, "foreground must be one of fashion, mnist5k, got 'cifar'"),
        ({"image_size": 8}, "image_size must be in 16..128, got 8"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        get_dataset("textured_objects", **options)


def test_shuffle_easy_balances_train_backgrounds_only(digits_on_textures):
    shuffled = get_dataset("textured_objects", seed=1, shuffle_easy=True, **SMALL)
    d = digits_on_textures
    assert shuffled.agreement("train") == 0.5
    np.testing.assert_array_equal(shuffled.group_counts("train"), [150, 150, 150, 150])
    np.testing.assert_array_equal(shuffled.labels("train"), d.labels("train"))
    for s in ("val", "test", "probe_train", "probe_test"):
        assert torch.equal(shuffled.images(s), d.images(s)), s
    # The recorded family is the one in the pixels: a texture probe fitted on the (balanced)
    # probe split reads the shuffled train backgrounds.
    probe = LogisticRegression(max_iter=3000).fit(
        _corner_texture_stats(d.images("probe_train")[:, 0]), d.others("probe_train")
    )
    assert probe.score(_corner_texture_stats(shuffled.images("train")[:, 0]), shuffled.others("train")) > 0.95
