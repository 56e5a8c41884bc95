"""DFR equals a direct scikit-learn implementation of the published protocol."""

import inspect
import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from synthetic import make_features

from samlens.errors import ConfigError
from samlens.probe import Features, dfr, sklearn_engine


def official_l1_fit(C, seed, X, y):
    """Kirichenko et al.'s model: ``LogisticRegression(penalty="l1", C=C, solver="liblinear")``.

    scikit-learn 1.8 deprecates ``penalty`` (same meaning, with warnings); only where it has
    been removed does the reference fall back to ``l1_ratio=1``, its documented replacement.
    The sparsity tests below catch an L2 fit whichever spelling is used.
    """
    has_penalty = "penalty" in inspect.signature(LogisticRegression).parameters
    kw = {"penalty": "l1"} if has_penalty else {"l1_ratio": 1.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", "Inconsistent values: penalty=l1", UserWarning)
        return LogisticRegression(C=C, solver="liblinear", random_state=seed, **kw).fit(X, y)


def reference_dfr(train, val, test, target, seed):
    """Kirichenko et al.'s dfr_on_validation_tune / _eval, written out with scikit-learn."""
    Cs = [1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01]
    y_val = val.labels if target == "label" else val.others
    y_test = test.labels if target == "label" else test.others
    g_val, n_groups = val.groups, 4
    rng = np.random.default_rng(seed)

    def balance(rows):
        by_group = [rows[g_val[rows] == g] for g in range(n_groups)]
        m = min(len(r) for r in by_group)
        return np.concatenate([rng.permutation(r)[:m] for r in by_group])

    idx = rng.permutation(len(val))
    n_half = len(val) // 2
    x_valtrain_rows = balance(idx[n_half:])
    heldout = idx[:n_half]
    scaler = StandardScaler()
    x_valtrain = scaler.fit_transform(val.features[x_valtrain_rows])
    x_heldout = scaler.transform(val.features[heldout])
    worst = []
    for C in Cs:
        pred = official_l1_fit(C, seed, x_valtrain, y_val[x_valtrain_rows]).predict(x_heldout)
        accs = [(pred == y_val[heldout])[g_val[heldout] == g].mean() for g in range(n_groups)]
        worst.append(min(accs))
    best_C = Cs[int(np.argmax(worst))]

    scaler = StandardScaler().fit(train.features)
    coefs, intercepts = [], []
    for _ in range(20):
        rows = balance(np.arange(len(val)))
        m = official_l1_fit(best_C, seed, scaler.transform(val.features[rows]), y_val[rows])
        coefs.append(m.coef_)
        intercepts.append(m.intercept_)
    coef, intercept = np.mean(coefs, axis=0), np.mean(intercepts, axis=0)
    pred = ((scaler.transform(test.features) @ coef.T + intercept)[:, 0] > 0).astype(int)
    accs = {g: (pred == y_test)[test.groups == g].mean() for g in range(n_groups)}
    p_train = np.bincount(train.groups, minlength=n_groups) / len(train)
    return {
        "best_C": best_C,
        "coef": coef,
        "intercept": intercept,
        "per_group_acc": accs,
        "worst_group_acc": min(accs.values()),
        "mean_acc": (pred == y_test).mean(),
        "train_weighted_mean_acc": sum(accs[g] * p_train[g] for g in range(n_groups)),
    }


def waterbirds_like(seed):
    """Train dominated by majority groups; val/test less so; the label is only weakly encoded."""
    train = make_features(0, group_sizes=(400, 20, 30, 350), mu_a=0.6, mu_b=1.5, dim=10, seed=seed)
    val = make_features(0, group_sizes=(90, 40, 45, 85), mu_a=0.6, mu_b=1.5, dim=10, seed=seed + 1)
    test = make_features(0, group_sizes=(200, 200, 150, 150), mu_a=0.6, mu_b=1.5, dim=10, seed=seed + 2)
    return train, val, test


@pytest.mark.parametrize(("target", "seed"), [("label", 0), ("label", 1), ("other", 2)])
def test_dfr_equals_direct_sklearn_protocol(target, seed):
    train, val, test = waterbirds_like(seed)
    ours = dfr(train, val, test, target=target, engine="sklearn", seed=seed)
    ref = reference_dfr(train, val, test, target, seed)
    assert ours["best_C"] == ref["best_C"]
    np.testing.assert_allclose(ours["coef"], ref["coef"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours["intercept"], ref["intercept"], atol=1e-6, rtol=0)
    for key in ("worst_group_acc", "mean_acc", "train_weighted_mean_acc"):
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key
    assert ours["per_group_acc"] == pytest.approx(ref["per_group_acc"], abs=1e-12)
    assert ours["n_retrain_examples"] == 4 * 40


def sparse_problem(seed=0, n=300, dim=40):
    """Two informative features among ``dim``; L1 at small C keeps only those."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim))
    y = (X[:, 0] - X[:, 1] + 0.5 * rng.normal(size=n) > 0).astype(np.int64)
    return X, y


def test_sklearn_engine_fits_l1_with_exact_zeros():
    X, y = sparse_problem()
    Cs = np.array([0.05, 0.3])
    rows = [np.arange(len(X))] * 2
    fits = sklearn_engine.fit_l1(X, y, np.array([0, 1]), rows, Cs, seed=0)
    for k, C in enumerate(Cs):
        ref = official_l1_fit(float(C), 0, X, y)
        np.testing.assert_allclose(fits.coef[k], ref.coef_, atol=1e-10)
        # An L2 fit has no exact zeros at all; L1 drops most of the 38 noise features.
        assert np.count_nonzero(fits.coef[k, 0] == 0.0) >= 20, C
        assert np.all(fits.coef[k, 0, :2] != 0.0)


@pytest.mark.parametrize(
    ("version", "kwargs"),
    [
        ("1.3.2", {"penalty": "l1"}),
        ("1.7.2", {"penalty": "l1"}),
        ("1.8.0", {"l1_ratio": 1.0}),
        ("1.9.1", {"l1_ratio": 1.0}),
        ("1.10.0rc1", {"l1_ratio": 1.0}),
        ("2.0", {"l1_ratio": 1.0}),
    ],
)
def test_l1_penalty_spelling_per_sklearn_version(version, kwargs):
    # Before 1.8, l1_ratio without penalty="elasticnet" is ignored (an L2 fit).
    assert sklearn_engine.l1_penalty(version) == kwargs


def test_dfr_averaged_coefficients_are_l1_sparse():
    # 62 noise dimensions: at the chosen C (0.1) L1 drops most of them in every one of the 20
    # fits, so their average is exactly 0; an L2 fit leaves no exact zero.
    kw = {"mu_a": 1.0, "mu_b": 1.5, "dim": 64}
    train = make_features(0, group_sizes=(400, 20, 30, 350), seed=7, **kw)
    val = make_features(0, group_sizes=(120, 40, 45, 110), seed=8, **kw)
    test = make_features(0, group_sizes=(100, 100, 100, 100), seed=9, **kw)
    r = dfr(train, val, test, engine="sklearn", seed=0)
    ref = reference_dfr(train, val, test, "label", 0)
    assert r["best_C"] == ref["best_C"] == 0.1
    np.testing.assert_allclose(r["coef"], ref["coef"], atol=1e-6, rtol=0)
    assert r["coef"][0, 0] != 0.0
    assert r["coef"][0, 1] == 0.0  # the spurious feature is dropped
    assert np.count_nonzero(r["coef"][0] == 0.0) >= 30


def test_dfr_recovers_the_minority_groups():
    # The training distribution's correlation does not leak into DFR: balanced retraining on
    # a weak but real label signal gives every group well-above-chance accuracy.
    train, val, test = waterbirds_like(5)
    r = dfr(train, val, test, seed=0)
    assert r["worst_group_acc"] > 0.55
    # The spurious attribute (shift 1.5) is far more decodable: Φ(1.5) ≈ 0.93.
    assert dfr(train, val, test, target="other", seed=0)["mean_acc"] > 0.88


def test_dfr_missing_val_group_is_a_clear_error():
    train, val, test = waterbirds_like(0)
    keep = val.groups != 1
    val = Features(val.features[keep], val.labels[keep], val.others[keep], val.groups[keep])
    with pytest.raises(ConfigError, match="group 1 has no examples"):
        dfr(train, val, test)


def test_dfr_missing_test_group_is_a_clear_error():
    train, val, test = waterbirds_like(0)
    test = test.subset(test.groups != 3)
    with pytest.raises(ConfigError, match="group 3 has no examples"):
        dfr(train, val, test)


def test_dfr_unknown_target_is_a_clear_error():
    train, val, test = waterbirds_like(0)
    with pytest.raises(ConfigError, match="unknown probe target 'hair'"):
        dfr(train, val, test, target="hair")
