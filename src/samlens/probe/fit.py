"""Standardise, choose C by stratified cross-validation, refit: the core of every L2 probe."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from samlens._optional import require

with require("probe"):
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

from samlens.errors import ConfigError
from samlens.probe.engine import get_engine
from samlens.probe.linear import encode_classes
from samlens.validate import check_positive_int, check_real

# Inverse regularisation strengths searched by cross-validation (scikit-learn's C).
PROBE_CS: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
CV_FOLDS = 5


@dataclass
class ProbeFit:
    """A probe chosen by cross-validation and its predictions on the test rows."""

    C: float
    cv_acc: dict[float, float]
    test_pred: np.ndarray


def cv_logistic_probe(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    *,
    engine: str,
    seed: int,
    Cs: tuple[float, ...] = PROBE_CS,
    what: str = "probe target",
    repeats: int = 1,
    C: float | None = None,
) -> ProbeFit:
    """Fit a multinomial logistic-regression probe with C chosen by CV on the training rows.

    Features are standardised with training statistics. All (fold, C) fits and the final
    refits for every C are one batch of problems for the engine: the torch engine solves
    them together. The best C maximises mean CV accuracy; ties go to the smaller C
    (stronger regularisation), so both engines break ties the same way. ``repeats`` > 1 averages
    the CV accuracy over that many fold splits (seeds ``seed .. seed+repeats-1``), which steadies
    the choice of C where neighbouring values score within a fold's noise of each other.

    A fixed ``C`` skips the search: one fit on every training row (``cv_acc`` empty). A C chosen once
    for a whole sweep removes the search's own noise from comparisons between runs, and on wide
    features it costs one fit instead of ``len(Cs) × (folds + 1)``.
    """
    check_positive_int("probe cv repeats", repeats)
    classes, y_idx = encode_classes(y_train, what)
    scaler = StandardScaler().fit(X_train)
    Xtr, Xte = scaler.transform(X_train), scaler.transform(X_test)
    all_rows = np.arange(len(Xtr))
    if C is not None:
        C = check_real("probe C", C, low=0.0, low_open=True)
        model = get_engine(engine).fit_l2(Xtr, y_idx, classes, [all_rows], np.asarray([C]), seed=seed)
        return ProbeFit(C=C, cv_acc={}, test_pred=model.predict(Xte)[0])
    folds = min(CV_FOLDS, int(np.bincount(y_idx).min()))
    if folds < 2:
        raise ConfigError(f"{what}: every class needs at least 2 training examples for cross-validation")
    splits = [
        split
        for r in range(repeats)
        for split in StratifiedKFold(folds, shuffle=True, random_state=seed + r).split(Xtr, y_idx)
    ]
    per_c = len(splits)
    rows, Cs_k = [], []
    for c in Cs:
        rows += [tr for tr, _ in splits] + [all_rows]
        Cs_k += [c] * (per_c + 1)
    models = get_engine(engine).fit_l2(Xtr, y_idx, classes, rows, np.asarray(Cs_k), seed=seed)
    pred_train = models.predict(Xtr)
    cv_acc: dict[float, float] = {}
    for c_i, c in enumerate(Cs):
        base = c_i * (per_c + 1)
        accs = [np.mean(pred_train[base + f, va] == classes[y_idx[va]]) for f, (_, va) in enumerate(splits)]
        cv_acc[float(c)] = float(np.mean(accs))
    best = max(range(len(Cs)), key=lambda i: (cv_acc[float(Cs[i])], -Cs[i]))
    final = best * (per_c + 1) + per_c
    test_pred = models.predict(Xte)[final]
    return ProbeFit(C=float(Cs[best]), cv_acc=cv_acc, test_pred=test_pred)
