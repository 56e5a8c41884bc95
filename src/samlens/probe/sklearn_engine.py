"""Reference engine: one scikit-learn fit per problem, exactly as the published protocols do."""

from __future__ import annotations

import re
import warnings

import numpy as np

from samlens._optional import require

with require("probe"):
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

from samlens.probe.linear import LinearModels


def l1_penalty(version: str = sklearn.__version__) -> dict:
    """The keyword arguments that make ``LogisticRegression`` fit a pure L1 penalty.

    Before scikit-learn 1.8, ``l1_ratio`` is ignored unless ``penalty="elasticnet"``, so
    ``l1_ratio=1`` alone silently fits the default L2 penalty; from 1.8 on, ``penalty`` is
    deprecated (removed in 1.10) and ``l1_ratio=1`` is how L1 is asked for.
    """
    major, minor = (int(p) for p in re.findall(r"\d+", version)[:2])
    return {"l1_ratio": 1.0} if (major, minor) >= (1, 8) else {"penalty": "l1"}


def fit_l2(
    X: np.ndarray, y: np.ndarray, classes: np.ndarray, rows: list[np.ndarray], Cs: np.ndarray, *, seed: int
) -> LinearModels:
    """Multinomial (binary for two classes) L2 logistic regression, lbfgs, one fit per (rows, C)."""
    # lbfgs keeps float32 input in float32, which leaves the intercept ~1e-3 off at small C.
    X = np.asarray(X, dtype=np.float64)
    coefs, intercepts = [], []
    for idx, C in zip(rows, Cs):
        # The reference must be converged, not capped at scikit-learn's default 100 iterations.
        model = LogisticRegression(C=float(C), solver="lbfgs", max_iter=5000, tol=1e-6)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X[idx], classes[y[idx]])
        coefs.append(model.coef_)
        intercepts.append(model.intercept_)
    return LinearModels(np.stack(coefs), np.stack(intercepts), classes)


def fit_l1(
    X: np.ndarray, y: np.ndarray, classes: np.ndarray, rows: list[np.ndarray], Cs: np.ndarray, *, seed: int
) -> LinearModels:
    """L1 logistic regression with liblinear (DFR's solver), one fit per (rows, C).

    Labels y are class indices; one-vs-rest beyond two classes, as liblinear does.
    """
    coefs, intercepts = [], []
    targets = [1] if len(classes) == 2 else range(len(classes))
    for idx, C in zip(rows, Cs):
        coef, icpt = [], []
        for c in targets:
            model = LogisticRegression(C=float(C), solver="liblinear", random_state=seed, **l1_penalty())
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(X[idx], (y[idx] == c).astype(np.int64))
            coef.append(model.coef_[0])
            icpt.append(model.intercept_[0])
        coefs.append(np.stack(coef))
        intercepts.append(np.asarray(icpt))
    return LinearModels(np.stack(coefs), np.stack(intercepts), classes)
