"""Deep Feature Reweighting: last-layer retraining on group-balanced validation data.

Science spec §6, after Kirichenko, Izmailov & Wilson (ICLR 2023), reference code
``dfr_evaluate_spurious.py``. Randomness comes from one ``numpy.random.default_rng(seed)``
consumed in this order, so the protocol can be reproduced independently:

1. ``perm = rng.permutation(len(val))``; tuning half B = ``perm[:len(val) // 2]``, half
   A = ``perm[len(val) // 2:]``.
2. Balance A: for g = 0..G-1, ``rng.permutation(A rows of group g)[:m]``, m = smallest group.
3. For each of the 20 final fits, balance the whole val set the same way (groups in order).

The liblinear coordinate order uses ``random_state=seed``.
"""

from __future__ import annotations

import numpy as np

from samlens._optional import require

with require("probe"):
    from sklearn.preprocessing import StandardScaler

from samlens.errors import ConfigError
from samlens.probe.engine import get_engine
from samlens.probe.features import Features, check_same_dim
from samlens.probe.linear import LinearModels, encode_classes
from samlens.probe.metrics import (
    mean_accuracy,
    per_group_accuracy,
    train_weighted_mean_accuracy,
)

DFR_CS: tuple[float, ...] = (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)
DFR_RETRAINS = 20
# The batched OWL-QN engine: the recipe's worst-group accuracy at a fraction of liblinear's
# time (docs/benchmarks.md). A run's ``probe.engine`` is chosen for the balanced L2 probe
# and is not used here unless asked for.
DFR_ENGINE = "torch"


def _balanced_draw(rows: np.ndarray, groups: np.ndarray, num_groups: int, rng, what: str) -> np.ndarray:
    members = [rows[groups[rows] == g] for g in range(num_groups)]
    empty = [g for g, m in enumerate(members) if len(m) == 0]
    if empty:
        raise ConfigError(f"group {empty[0]} has no examples in {what}; DFR needs every group")
    size = min(len(m) for m in members)
    return np.concatenate([rng.permutation(m)[:size] for m in members])


def dfr(
    train: Features,
    val: Features,
    test: Features,
    *,
    target: str = "label",
    engine: str = DFR_ENGINE,
    seed: int = 0,
) -> dict:
    """Retrain the last layer on group-balanced validation embeddings and evaluate on test.

    ``target="label"`` is DFR proper; ``target="other"`` runs the same recipe predicting the
    other (spurious) attribute, which measures how decodable it is. C is tuned on half-splits
    of val by worst-group accuracy; the final model averages 20 balanced L1 fits. Returns
    ``best_C``, ``tune_worst_group_acc`` ({C: score}), test ``per_group_acc``,
    ``worst_group_acc``, ``mean_acc`` (plain), ``train_weighted_mean_acc`` (Σ acc_g p_train(g)),
    the averaged ``coef`` [n_out, D] / ``intercept`` [n_out] on train-standardised features,
    ``classes`` and sizes.
    """
    check_same_dim(train=train, val=val, test=test)
    num_groups = int(max(train.groups.max(), val.groups.max(), test.groups.max())) + 1
    y_val, y_test = val.target(target), test.target(target)
    classes, y_idx = encode_classes(y_val, f"DFR target {target!r} on val")
    fit_l1 = get_engine(engine).fit_l1
    rng = np.random.default_rng(seed)

    # Tuning: fit on balanced half A (scaled by its own statistics), score worst group on half B.
    perm = rng.permutation(len(val))
    half_b, half_a = perm[: len(val) // 2], perm[len(val) // 2 :]
    rows_a = _balanced_draw(half_a, val.groups, num_groups, rng, "the tuning half of val")
    scaler_a = StandardScaler().fit(val.features[rows_a])
    Xa, Xb = scaler_a.transform(val.features[rows_a]), scaler_a.transform(val.features[half_b])
    all_a = np.arange(len(rows_a))
    tune = fit_l1(Xa, y_idx[rows_a], classes, [all_a] * len(DFR_CS), np.asarray(DFR_CS), seed=seed)
    preds_b = tune.predict(Xb)
    scores = {
        float(C): min(per_group_accuracy(y_val[half_b], preds_b[i], val.groups[half_b]).values())
        for i, C in enumerate(DFR_CS)
    }
    best_C = float(DFR_CS[int(np.argmax([scores[float(C)] for C in DFR_CS]))])  # ties: first listed

    # Final: 20 balanced draws of all of val, scaled with training statistics, averaged. The
    # scaling is row-wise, so val is scaled once and every draw is a set of its rows.
    scaler = StandardScaler().fit(train.features)
    draws = [
        _balanced_draw(np.arange(len(val)), val.groups, num_groups, rng, "val") for _ in range(DFR_RETRAINS)
    ]
    X_val = scaler.transform(val.features)
    fits = fit_l1(X_val, y_idx, classes, draws, np.full(DFR_RETRAINS, best_C), seed=seed)
    coef, intercept = fits.coef.mean(axis=0), fits.intercept.mean(axis=0)
    model = LinearModels(coef[None], intercept[None], classes)
    pred = model.predict(scaler.transform(test.features))[0]
    per_group = per_group_accuracy(y_test, pred, test.groups, num_groups)
    return {
        "target": target,
        "engine": engine,
        "seed": seed,
        "best_C": best_C,
        "tune_worst_group_acc": scores,
        "per_group_acc": per_group,
        "worst_group_acc": min(per_group.values()),
        "mean_acc": mean_accuracy(y_test, pred),
        "train_weighted_mean_acc": train_weighted_mean_accuracy(per_group, train.groups, num_groups),
        "coef": coef,
        "intercept": intercept,
        "classes": classes,
        "n_retrain_examples": len(draws[0]),
        "n_test": len(test),
    }
