import numpy as np
import pytest
from synthetic import make_features, phi

from samlens.errors import ConfigError
from samlens.probe import Features, balanced_probe
from samlens.probe.balance import balance_cells
from samlens.probe.balanced import balanced_subsets


@pytest.fixture(scope="module")
def probe_result():
    train = make_features(2000, seed=1)
    test = make_features(4000, seed=2)
    return balanced_probe(train, test, engine="torch", seed=0)


def test_probe_accuracies_match_theory(probe_result):
    r = probe_result
    # Label: mean shift ±4 on one unit-noise feature -> Bayes accuracy Φ(4) ≈ 0.99997.
    assert r["probe_acc_label"] >= 0.995
    # Other attribute: shift ±0.5 -> Bayes accuracy Φ(0.5) ≈ 0.691. On balanced data the label
    # (which agrees with it 80% of the time in the raw data) cannot help, so the probe must land
    # near Φ(0.5) and not near 0.8. Tolerance: ~3 binomial standard errors on 1,600 test rows.
    assert abs(r["probe_acc_other"] - phi(0.5)) < 0.035
    assert r["n_test"] == 4 * min(np.bincount(make_features(4000, seed=2).groups))
    assert set(r["per_group_acc_other"]) == {0, 1, 2, 3}
    assert r["balanced_acc_other"] == pytest.approx(r["probe_acc_other"], abs=0.02)
    assert r["C_label"] in r["cv_acc_label"] and r["C_other"] in r["cv_acc_other"]


def test_balancing_makes_the_attributes_independent():
    raw = make_features(3000, seed=3, agree=0.9)
    table = np.histogram2d(raw.labels, raw.others, bins=2)[0]
    assert table[0, 0] + table[1, 1] > 4 * (table[0, 1] + table[1, 0])  # strongly dependent before
    btrain, btest = balanced_subsets(raw, make_features(3000, seed=4, agree=0.9), seed=0)
    for f in (btrain, btest):
        counts = np.histogram2d(f.labels, f.others, bins=2)[0]
        assert (counts == counts[0, 0]).all()  # every cell equal -> P(a, b) = P(a) P(b) exactly
        p_ab = counts / counts.sum()
        np.testing.assert_allclose(p_ab, np.outer(p_ab.sum(1), p_ab.sum(0)))


def test_balanced_sizes_follow_the_smallest_group():
    train = make_features(0, group_sizes=(300, 50, 80, 400), seed=5)
    test = make_features(0, group_sizes=(100, 30, 60, 90), seed=6)
    btrain, btest = balanced_subsets(train, test, seed=0)
    assert len(btrain) == 200 and len(btest) == 120
    assert np.bincount(btrain.groups).tolist() == [50] * 4


def test_balance_cells_subsample_depends_on_seed_only():
    keys = np.repeat(np.arange(3), [5, 9, 4])
    a = balance_cells(keys, np.random.default_rng(7))
    b = balance_cells(keys, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert np.bincount(keys[a]).tolist() == [4, 4, 4]


def test_balanced_probe_is_deterministic_for_a_seed():
    train, test = make_features(600, seed=8, mu_a=1.0), make_features(600, seed=9, mu_a=1.0)
    r1 = balanced_probe(train, test, engine="torch", seed=3)
    r2 = balanced_probe(train, test, engine="torch", seed=3)
    assert r1 == r2


def _features(labels, others, features=None):
    labels, others = np.asarray(labels), np.asarray(others)
    if features is None:
        features = np.random.default_rng(0).normal(size=(len(labels), 3))
    return Features(features, labels, others, 2 * labels + others)


def test_empty_cell_is_a_clear_error():
    train = _features([0, 0, 1, 1] * 5, [0, 1, 0, 0] * 5)  # no (label=1, other=1) example
    test = _features([0, 0, 1, 1] * 5, [0, 1, 0, 1] * 5)
    with pytest.raises(ConfigError, match=r"cell \(1, 1\) has no examples in probe-train"):
        balanced_probe(train, test)


def test_single_class_is_a_clear_error():
    train = _features([0, 1] * 10, [0] * 20)
    test = _features([0, 1] * 10, [0] * 20)
    with pytest.raises(ConfigError, match="probe target 'other' has a single class"):
        balanced_probe(train, test, engine="torch")


def test_mismatched_dimensions_are_a_clear_error():
    train = _features([0, 1] * 10, [0, 0, 1, 1] * 5)
    test = _features([0, 1] * 10, [0, 0, 1, 1] * 5, np.zeros((20, 4)))
    with pytest.raises(ConfigError, match="feature dimensions differ"):
        balanced_probe(train, test)
