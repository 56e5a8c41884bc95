"""Mutated feature caches: load_features returns well-formed Features or raises one ConfigError."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzing import mutate
from samlens.errors import ConfigError
from samlens.probe.features import Features, load_features, save_features

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _features(n: int = 12, d: int = 4) -> Features:
    rng = np.random.default_rng(0)
    labels, others = rng.integers(0, 2, n), rng.integers(0, 2, n)
    return Features(rng.normal(size=(n, d)).astype(np.float32), labels, others, 2 * labels + others)


@pytest.fixture(scope="module")
def cache_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("cache") / "f.npz"
    save_features(_features(), path)
    return path.read_bytes()


def test_a_cache_round_trips(tmp_path):
    feats = _features()
    save_features(feats, tmp_path / "f.npz")
    back = load_features(tmp_path / "f.npz")
    for key in ("features", "labels", "others", "groups"):
        assert np.array_equal(getattr(back, key), getattr(feats, key))


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"labels": np.zeros(3, np.int64)}, "labels is (3,) int64; expected 12 integers"),
        ({"others": np.zeros(12, np.float64)}, "others is (12,) float64; expected 12 integers"),
        ({"features": np.zeros(12)}, "features are (12,) float64"),
        ({"features": np.full((12, 4), np.nan)}, "expected N x D finite numbers"),
    ],
)
def test_wrong_arrays_are_named(tmp_path, arrays, message):
    feats = _features()
    parts = {k: getattr(feats, k) for k in ("features", "labels", "others", "groups")}
    np.savez(tmp_path / "f.npz", **{**parts, **arrays})
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_features(tmp_path / "f.npz")


@FUZZ
@given(data=st.data())
def test_mutated_caches_load_well_formed_or_raise_one_error(cache_bytes, tmp_path_factory, data):
    path = tmp_path_factory.mktemp("mutated") / "f.npz"
    path.write_bytes(mutate(cache_bytes, data.draw))
    try:
        feats = load_features(path)
    except ConfigError as err:
        assert "\n" not in str(err) and str(path) in str(err)
        return
    assert feats.features.ndim == 2 and np.isfinite(feats.features).all()
    assert len(feats.labels) == len(feats.others) == len(feats.groups) == len(feats.features)
