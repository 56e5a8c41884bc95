"""The balanced per-feature probe (science spec §5): how well Φ_θ encodes each attribute."""

from __future__ import annotations

import numpy as np

from samlens.probe.balance import balance_cells
from samlens.probe.features import Features, check_same_dim
from samlens.probe.fit import cv_logistic_probe
from samlens.probe.metrics import balanced_accuracy, mean_accuracy, per_group_accuracy

TARGETS = ("label", "other")


def balanced_subsets(train: Features, test: Features, seed: int) -> tuple[Features, Features]:
    """Probe-train and probe-test with every (label, other) cell cut to its smallest size.

    Both splits are balanced over the same grid of cells (the values seen in either), so
    in each split the two attributes are statistically independent.
    """
    labels = np.union1d(train.labels, test.labels)
    others = np.union1d(train.others, test.others)
    cells = np.array(np.meshgrid(labels, others, indexing="ij")).reshape(2, -1).T
    rng = np.random.default_rng(seed)
    keys = lambda f: np.stack([f.labels, f.others], axis=1)  # noqa: E731
    tr = balance_cells(keys(train), rng, cells=cells, what="probe-train")
    te = balance_cells(keys(test), rng, cells=cells, what="probe-test")
    return train.subset(tr), test.subset(te)


def balanced_probe(
    train: Features,
    test: Features,
    *,
    engine: str = "torch",
    seed: int = 0,
    cv_repeats: int = 1,
    C: float | None = None,
) -> dict:
    """Probe accuracy of the label (A) and of the other attribute (B) on balanced splits.

    Spec §5: balance the (A, B) cells of probe-train and probe-test, standardise with
    probe-train statistics, fit a multinomial logistic regression per target with C
    chosen by 5-fold stratified CV on probe-train, and score on balanced probe-test.
    Returns ``probe_acc_<t>``, ``balanced_acc_<t>``, ``per_group_acc_<t>``, ``C_<t>`` and
    ``cv_acc_<t>`` for t in (label, other), plus ``n_train``/``n_test`` (balanced sizes).
    ``cv_repeats`` > 1 averages the CV accuracy that picks C over that many fold splits; a fixed
    ``C`` replaces the search for both targets (``cv_acc_<t>`` is then empty).
    """
    check_same_dim(train=train, test=test)
    btrain, btest = balanced_subsets(train, test, seed)
    out: dict = {"n_train": len(btrain), "n_test": len(btest), "engine": engine, "seed": seed}
    for target in TARGETS:
        y_tr, y_te = btrain.target(target), btest.target(target)
        fit = cv_logistic_probe(
            btrain.features,
            y_tr,
            btest.features,
            engine=engine,
            seed=seed,
            what=f"probe target {target!r}",
            repeats=cv_repeats,
            C=C,
        )
        out[f"probe_acc_{target}"] = mean_accuracy(y_te, fit.test_pred)
        out[f"balanced_acc_{target}"] = balanced_accuracy(y_te, fit.test_pred)
        out[f"per_group_acc_{target}"] = per_group_accuracy(y_te, fit.test_pred, btest.groups)
        out[f"C_{target}"] = fit.C
        out[f"cv_acc_{target}"] = fit.cv_acc
    return out
