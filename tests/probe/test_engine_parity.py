"""The batched torch engine agrees with the scikit-learn reference engine."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from synthetic import make_features

from samlens.errors import ConfigError
from samlens.probe import balanced_probe, dfr, torch_l1, transfer_probe
from samlens.probe.engine import get_engine
from samlens.probe.linear import encode_classes
from samlens.probe.sklearn_engine import l1_penalty


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_balanced_probe_engines_agree_within_half_a_point(seed):
    train = make_features(500, dim=12, mu_a=0.8, mu_b=0.4, seed=10 + seed)
    test = make_features(1500, dim=12, mu_a=0.8, mu_b=0.4, seed=20 + seed)
    ref = balanced_probe(train, test, engine="sklearn", seed=seed)
    fast = balanced_probe(train, test, engine="torch", seed=seed)
    for t in ("label", "other"):
        assert abs(fast[f"probe_acc_{t}"] - ref[f"probe_acc_{t}"]) <= 0.005, t
        assert fast[f"C_{t}"] == ref[f"C_{t}"], t
        # The CV curve matches too. At C = 0.001 the weights agree to 1e-6 but most scores sit
        # within 1e-3 of the boundary, so float32 vs float64 flips a few fold predictions.
        for C, acc in ref[f"cv_acc_{t}"].items():
            assert abs(fast[f"cv_acc_{t}"][C] - acc) <= 0.02, (t, C)


def test_multiclass_engines_agree():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 900)
    X = rng.normal(size=(900, 6))
    X[np.arange(900), y] += 1.5
    classes, y_idx = encode_classes(y, "y")
    rows, Cs = [np.arange(600)] * 3, np.array([0.01, 1.0, 100.0])
    ref = get_engine("sklearn").fit_l2(X[:600], y_idx[:600], classes, rows, Cs, seed=0)
    fast = get_engine("torch").fit_l2(X[:600], y_idx[:600], classes, rows, Cs, seed=0)
    # Same objective and optimum: multinomial weights agree closely, predictions almost everywhere.
    np.testing.assert_allclose(fast.coef, ref.coef, atol=2e-3)
    assert (fast.predict(X[600:]) != ref.predict(X[600:])).mean() <= 0.005


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dfr_engines_agree_within_half_a_point(seed):
    kw = {"mu_a": 0.8, "mu_b": 1.5, "dim": 10}
    train = make_features(0, group_sizes=(400, 20, 30, 350), seed=seed, **kw)
    val = make_features(0, group_sizes=(120, 60, 70, 110), seed=seed + 1, **kw)
    test = make_features(0, group_sizes=(300, 300, 300, 300), seed=seed + 2, **kw)
    ref = dfr(train, val, test, engine="sklearn", seed=seed)
    fast = dfr(train, val, test, engine="torch", seed=seed)
    assert fast["best_C"] == ref["best_C"]
    assert abs(fast["mean_acc"] - ref["mean_acc"]) <= 0.005
    assert abs(fast["worst_group_acc"] - ref["worst_group_acc"]) <= 0.005
    np.testing.assert_allclose(fast["coef"], ref["coef"], atol=0.02)


def latent_features(n, dim, seed):
    """Correlated standardised features (a 6-d latent behind ``dim`` units), label on latent 0."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    z = rng.normal(size=(n, 6))
    z[:, 0] += 0.8 * (2 * y - 1)
    X = z @ np.random.default_rng(99).normal(size=(6, dim)) + 0.7 * rng.normal(size=(n, dim))
    return (X - X.mean(0)) / X.std(0), y


@pytest.mark.parametrize("dtype", [None, torch.float32])
def test_l1_engines_agree_on_resampled_draws(dtype):
    # DFR's final stage: the same C on different row subsets of one matrix, correlated features.
    X, y = latent_features(1200, 60, seed=6)
    rng = np.random.default_rng(7)
    rows = [np.sort(rng.choice(len(X), 500, replace=False)) for _ in range(4)]
    classes, Cs = np.array([0, 1]), np.full(4, 0.1)
    official = get_engine("sklearn").fit_l1(X, y, classes, rows, Cs, seed=0)
    fast = torch_l1.fit_l1(X, y, classes, rows, Cs, dtype=dtype)
    # liblinear at its default tolerance is itself ~5e-3 (relative) from the optimum, so the
    # tight comparison is with liblinear run to convergence.
    tight = [
        LogisticRegression(C=0.1, solver="liblinear", tol=1e-10, max_iter=10_000, **l1_penalty()).fit(
            X[r], y[r]
        )
        for r in rows
    ]
    ref_coef = np.stack([m.coef_ for m in tight])
    ref_icpt = np.stack([m.intercept_ for m in tight])
    scale = np.abs(ref_coef).max()
    atol = 1e-3 if dtype is None else 1e-2
    np.testing.assert_allclose(fast.coef / scale, ref_coef / scale, atol=atol)
    np.testing.assert_allclose(fast.intercept, ref_icpt, atol=atol * scale)
    np.testing.assert_allclose(fast.coef / scale, official.coef / scale, atol=2e-2)
    # The same sparsity: many exact zeros, in the same places up to a few tiny coefficients.
    zeros_ref, zeros_fast = ref_coef == 0.0, fast.coef == 0.0
    assert zeros_ref.sum() >= 0.3 * zeros_ref.size
    assert (zeros_ref != zeros_fast).sum() <= 0.05 * zeros_ref.size
    assert np.all(np.abs(ref_coef[zeros_ref != zeros_fast]) <= atol * scale)


def test_l1_engines_agree_on_sparse_solution():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 20))
    y = (X[:, 0] - X[:, 1] + 0.5 * rng.normal(size=400) > 0).astype(int)
    classes = np.array([0, 1])
    Cs = np.array([1.0, 0.1, 0.01])
    rows = [np.arange(len(X))] * 3
    ref = get_engine("sklearn").fit_l1(X, y, classes, rows, Cs, seed=0)
    fast = get_engine("torch").fit_l1(X, y, classes, rows, Cs, seed=0)
    np.testing.assert_allclose(fast.coef, ref.coef, atol=5e-3)
    np.testing.assert_allclose(fast.intercept, ref.intercept, atol=5e-3)
    # L1 really zeroes coordinates: at C=0.01 only the two informative ones can survive.
    assert np.count_nonzero(np.abs(fast.coef[2, 0]) > 1e-6) <= 2


def test_torch_engine_is_deterministic():
    domain = make_features(800, mu_a=0.7, seed=4)
    assert transfer_probe(domain, seed=5) == transfer_probe(domain, seed=5)
    train, val, test = (make_features(400, seed=s) for s in (1, 2, 3))
    a = dfr(train, val, test, engine="torch", seed=1)
    b = dfr(train, val, test, engine="torch", seed=1)
    np.testing.assert_array_equal(a["coef"], b["coef"])


def test_unknown_engine_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown probe engine 'jax'"):
        get_engine("jax")
    with pytest.raises(ConfigError, match="only the torch engine takes a device"):
        get_engine("sklearn:cuda")


@pytest.mark.parametrize("n_cls", [2, 3])
def test_engines_agree_with_more_features_than_examples(n_cls):
    # n < D: the torch engine solves in the n-dimensional row space and maps back; the
    # optimum has no weight outside it, so it must still match the reference in full D.
    rng = np.random.default_rng(5)
    y = rng.integers(0, n_cls, 80)
    X = rng.normal(size=(80, 150)) + 0.3 * rng.normal(size=(1, 150))
    X[np.arange(80), y] += 2.0
    classes, y_idx = encode_classes(y, "y")
    rows = [np.arange(60), np.arange(20, 80), np.arange(80)]
    Cs = np.array([0.01, 1.0, 100.0])
    ref = get_engine("sklearn").fit_l2(X, y_idx, classes, rows, Cs, seed=0)
    fast = get_engine("torch").fit_l2(X, y_idx, classes, rows, Cs, seed=0)
    scale = np.abs(ref.coef).max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(fast.coef / scale, ref.coef / scale, atol=2e-3)
    np.testing.assert_allclose(fast.intercept, ref.intercept, atol=2e-2 * float(scale.max()))


def test_l1_engines_agree_one_vs_rest():
    # Three classes: one binary L1 fit per class against the rest, as liblinear does.
    rng = np.random.default_rng(8)
    y = rng.integers(0, 3, 600)
    X = rng.normal(size=(600, 15))
    X[np.arange(600), y] += 1.5
    classes = np.array([0, 1, 2])
    rows = [np.arange(400), np.arange(200, 600)]
    Cs = np.array([0.1, 0.1])
    ref = get_engine("sklearn").fit_l1(X, y, classes, rows, Cs, seed=0)
    fast = get_engine("torch").fit_l1(X, y, classes, rows, Cs, seed=0)
    assert fast.coef.shape == ref.coef.shape == (2, 3, 15)
    np.testing.assert_allclose(fast.coef, ref.coef, atol=1e-2)
    np.testing.assert_allclose(fast.intercept, ref.intercept, atol=1e-2)
    assert (fast.predict(X) != ref.predict(X)).mean() <= 0.005


def test_l1_loss_matches_direct_computation_for_all_and_some_problems():
    # The fused row-block loss/gradient, for every problem at once and for a subset (the
    # line search's backtracking problems), against the plain float64 formula.
    X, y = latent_features(2500, 30, seed=8)  # more rows than one block
    rng = np.random.default_rng(9)
    B = 3
    w = np.zeros((len(X), B))
    for k in range(B):
        rows = rng.choice(len(X), 900, replace=False)
        w[rows, k] = 1.0 / len(rows)
    yb = np.stack([y == 1, y == 0, y == 1], 1).astype(float)
    theta = 0.1 * rng.normal(size=(B, X.shape[1] + 1))
    z = X @ theta[:, :-1].T + theta[:, -1]
    f_ref = (w * (np.logaddexp(0.0, z) - yb * z)).sum(0)
    r = (1.0 / (1.0 + np.exp(-z)) - yb) * w
    g_ref = np.concatenate([r.T @ X, r.sum(0)[:, None]], 1)
    loss = torch_l1._l1_loss(*(torch.tensor(a, dtype=torch.float64) for a in (X, w, yb)))
    for idx in ([0, 1, 2], [2], [0, 2]):
        f, g = loss(torch.tensor(theta[idx]), torch.tensor(idx))
        np.testing.assert_allclose(f.numpy(), f_ref[idx], rtol=1e-12)
        np.testing.assert_allclose(g.numpy(), g_ref[idx], rtol=1e-10, atol=1e-15)
