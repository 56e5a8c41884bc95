"""Every accuracy number samlens reports, defined once (science spec §8).

Reports, probes and DFR all call these functions, so "worst-group accuracy" or
"train-weighted mean" means the same thing everywhere. Group-wise metrics return
plain Python floats keyed by the integer group id so they serialise to JSON as is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from samlens.errors import ConfigError


def _as_1d(name: str, values: object) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def _check_pair(y_true: object, y_pred: object) -> tuple[np.ndarray, np.ndarray]:
    t, p = _as_1d("y_true", y_true), _as_1d("y_pred", y_pred)
    if len(t) != len(p):
        raise ConfigError(f"y_true and y_pred have different lengths ({len(t)} vs {len(p)})")
    if len(t) == 0:
        raise ConfigError("cannot compute an accuracy on zero examples")
    return t, p


def mean_accuracy(y_true: object, y_pred: object) -> float:
    """Plain mean accuracy over all examples (each example counts once)."""
    t, p = _check_pair(y_true, y_pred)
    return float(np.mean(t == p))


def per_group_accuracy(
    y_true: object, y_pred: object, groups: object, num_groups: int | None = None
) -> dict[int, float]:
    """Accuracy within each group, ``{group_id: accuracy}``.

    With ``num_groups`` every group ``0..num_groups-1`` must have examples: a silently
    missing group would make the worst-group accuracy look better than it is.
    """
    t, p = _check_pair(y_true, y_pred)
    g = _as_1d("groups", groups)
    if len(g) != len(t):
        raise ConfigError(f"groups and y_true have different lengths ({len(g)} vs {len(t)})")
    present = np.unique(g)
    ids = range(num_groups) if num_groups is not None else present.tolist()
    correct = t == p
    out: dict[int, float] = {}
    for gid in ids:
        mask = g == gid
        if not mask.any():
            raise ConfigError(f"group {gid} has no examples; every group needs at least one")
        out[int(gid)] = float(correct[mask].mean())
    return out


def worst_group_accuracy(
    y_true: object, y_pred: object, groups: object, num_groups: int | None = None
) -> float:
    """The lowest per-group accuracy."""
    return min(per_group_accuracy(y_true, y_pred, groups, num_groups).values())


def group_proportions(groups: object, num_groups: int | None = None) -> dict[int, float]:
    """Fraction of examples in each group, ``{group_id: p(g)}``."""
    g = _as_1d("groups", groups)
    if len(g) == 0:
        raise ConfigError("cannot compute group proportions of zero examples")
    n = int(g.max()) + 1 if num_groups is None else num_groups
    counts = np.bincount(g.astype(np.int64), minlength=n)[:n]
    return {i: float(c) / len(g) for i, c in enumerate(counts)}


def train_weighted_mean_accuracy(
    per_group: Mapping[int, float], train_groups: object, num_groups: int | None = None
) -> float:
    """Σ_g acc_g · p_train(g): per-group accuracies weighted by training-group frequency.

    This is the Waterbirds "mean accuracy" of the group-DRO / DFR line; it differs from
    the plain test mean whenever the test groups are not distributed like the train ones.
    """
    props = group_proportions(train_groups, num_groups)
    missing = [g for g, p in props.items() if p > 0 and g not in per_group]
    if missing:
        raise ConfigError(f"per-group accuracy is missing for training groups {missing}")
    return float(sum(per_group[g] * p for g, p in props.items() if p > 0))


def balanced_accuracy(y_true: object, y_pred: object) -> float:
    """Mean over true classes of the per-class recall."""
    t, p = _check_pair(y_true, y_pred)
    return float(np.mean([np.mean(p[t == c] == c) for c in np.unique(t)]))


def mean_se(values: Iterable[float]) -> tuple[float, float, int]:
    """(mean, standard error std/√n with ddof=1, n) for aggregating across seeds.

    With one value the standard error is undefined and returned as NaN, so a table
    never shows a single seed as if it had zero spread.
    """
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.ndim != 1 or len(arr) == 0:
        raise ConfigError("mean_se needs at least one value")
    if not np.all(np.isfinite(arr)):
        raise ConfigError("mean_se got a non-finite value")
    n = len(arr)
    se = float(arr.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return float(arr.mean()), se, n
