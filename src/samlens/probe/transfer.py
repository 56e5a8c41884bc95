"""Transfer probe for a held-out domain (science spec §7 (b))."""

from __future__ import annotations

import numpy as np

from samlens._optional import require

with require("probe"):
    from sklearn.model_selection import train_test_split

from samlens.errors import ConfigError
from samlens.probe.features import Features
from samlens.probe.fit import cv_logistic_probe
from samlens.probe.linear import encode_classes
from samlens.probe.metrics import balanced_accuracy, mean_accuracy, per_group_accuracy


def transfer_probe(
    held_out: Features, *, fraction: float = 0.5, seed: int = 0, engine: str = "torch"
) -> dict:
    """Linear-probe accuracy on a domain the model never trained on.

    A label-stratified ``fraction`` of the held-out domain's features fits the probe
    (standardised, multinomial logistic regression, C by CV on that part, as in
    :func:`~samlens.probe.balanced_probe`); the rest measures ``probe_acc``. Also returns
    ``balanced_acc``, ``per_group_acc`` over the groups present in the evaluation part,
    ``C``, ``cv_acc`` and the sizes.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"fraction must be strictly between 0 and 1, got {fraction}")
    encode_classes(held_out.labels, "held-out domain labels")
    try:
        fit_rows, eval_rows = train_test_split(
            np.arange(len(held_out)), train_size=fraction, stratify=held_out.labels, random_state=seed
        )
    except ValueError as exc:  # too few examples of a class for a stratified split
        raise ConfigError(f"cannot split the held-out domain for a transfer probe: {exc}") from None
    fit_part, eval_part = held_out.subset(np.sort(fit_rows)), held_out.subset(np.sort(eval_rows))
    fit = cv_logistic_probe(
        fit_part.features,
        fit_part.labels,
        eval_part.features,
        engine=engine,
        seed=seed,
        what="held-out labels",
    )
    return {
        "probe_acc": mean_accuracy(eval_part.labels, fit.test_pred),
        "balanced_acc": balanced_accuracy(eval_part.labels, fit.test_pred),
        "per_group_acc": per_group_accuracy(eval_part.labels, fit.test_pred, eval_part.groups),
        "C": fit.C,
        "cv_acc": fit.cv_acc,
        "n_train": len(fit_part),
        "n_test": len(eval_part),
        "engine": engine,
        "seed": seed,
    }
