"""A fixed probe C: one fit at that C on every training row, the same model scikit-learn fits."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from synthetic import make_features

from samlens.errors import ConfigError
from samlens.probe import balanced_probe
from samlens.probe.fit import cv_logistic_probe


@pytest.mark.parametrize("C", [0.01, 1.0])
def test_fixed_c_is_one_fit_matching_sklearn(C):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 12))
    y = (X[:, 0] + 0.7 * X[:, 1] + rng.normal(scale=0.8, size=400) > 0).astype(int)
    X_test = rng.normal(size=(300, 12))
    fit = cv_logistic_probe(X, y, X_test, engine="torch", seed=0, C=C)
    assert fit.C == C and fit.cv_acc == {}
    scaler = StandardScaler().fit(X)
    ref = LogisticRegression(C=C, max_iter=5000, tol=1e-10).fit(scaler.transform(X), y)
    agree = np.mean(fit.test_pred == ref.predict(scaler.transform(X_test)))
    assert agree >= 0.99  # the same objective; ties at the boundary may round either way


def test_fixed_c_probe_reports_that_c_for_both_targets():
    train, test = make_features(2000, seed=0), make_features(2000, seed=1)
    out = balanced_probe(train, test, seed=0, C=0.1)
    assert out["C_label"] == 0.1 and out["C_other"] == 0.1
    assert out["cv_acc_label"] == {} and out["cv_acc_other"] == {}
    searched = balanced_probe(train, test, seed=0)
    # feature 0 carries the label with mu 4: any sensible C decodes it near Φ(4) ≈ 1
    assert out["probe_acc_label"] == pytest.approx(searched["probe_acc_label"], abs=0.01)


@pytest.mark.parametrize("C", [0.0, -1.0, float("nan"), "0.1", True])
def test_a_bad_fixed_c_is_one_config_error(C):
    with pytest.raises(ConfigError, match="probe C must be"):
        cv_logistic_probe(
            np.zeros((4, 2)), np.array([0, 1, 0, 1]), np.zeros((2, 2)), engine="torch", seed=0, C=C
        )
