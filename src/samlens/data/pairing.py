"""Seeded, exact assignment of the other attribute (correlation strength) and of source images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from samlens.errors import ConfigError


def check_fraction(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be in [0, 1], got {value}")
    return value


def check_classes(name: str, classes: Sequence[int], num_source: int) -> tuple[int, ...]:
    """Validate a tuple of source class ids (distinct, in range, at least two)."""
    try:
        out = tuple(int(c) for c in classes)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a list of class ids, got {classes!r}") from None
    if len(out) < 2 or len(set(out)) != len(out) or min(out) < 0 or max(out) >= num_source:
        raise ConfigError(f"{name} must be >= 2 distinct class ids in 0..{num_source - 1}, got {list(out)}")
    return out


def assign_others(
    labels: np.ndarray, agreement: float, num_other: int, rng: np.random.Generator
) -> np.ndarray:
    """Other-attribute values with ``round(agreement * n)`` agreeing examples, spread evenly over classes.

    Disagreeing examples cycle through the remaining values, so they are spread evenly; requires
    ``num_other == number of classes`` (agreement means other == label).
    """
    others = np.empty_like(labels)
    classes = np.unique(labels)
    sizes = np.array([np.sum(labels == c) for c in classes])
    # Per-class counts that also make the overall count exact: floor, then hand out the remainder.
    wanted = agreement * sizes
    n_agree = np.floor(wanted).astype(int)
    remainder = int(round(agreement * len(labels))) - int(n_agree.sum())
    for j in np.argsort(-(wanted - n_agree), kind="stable")[:remainder]:
        n_agree[j] += 1
    for c, n in zip(classes, n_agree):
        idx = rng.permutation(np.flatnonzero(labels == c))
        others[idx[:n]] = c
        rest = [v for v in range(num_other) if v != c]
        others[idx[n:]] = np.resize(rng.permutation(rest), len(idx) - n)
    return others


def balanced_others(labels: np.ndarray, num_other: int, rng: np.random.Generator) -> np.ndarray:
    """Other-attribute values spread evenly within each class (independent of the label)."""
    others = np.empty_like(labels)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        others[idx] = np.resize(np.arange(num_other), len(idx))
    return others


def draw_by_class(wanted: np.ndarray, pool_labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices into a pool, one per entry of ``wanted`` with ``pool_labels[i] == wanted``.

    Each class's pool is walked through a seeded permutation, so images repeat only when a
    class needs more draws than its pool holds.
    """
    out = np.empty(len(wanted), dtype=np.int64)
    for c in np.unique(wanted):
        where = np.flatnonzero(wanted == c)
        pool = np.flatnonzero(pool_labels == c)
        if len(pool) == 0:
            raise ConfigError(f"no source images of class {c}")
        order = np.concatenate([rng.permutation(pool) for _ in range(-(-len(where) // len(pool)))])
        out[where] = order[: len(where)]
    return out


def partition_per_class(
    labels: np.ndarray, fractions: Sequence[float], rng: np.random.Generator
) -> list[np.ndarray]:
    """Split indices into parts with the given fractions, separately (stratified) per class."""
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    bounds = np.cumsum([0.0, *fractions])
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cuts = np.round(bounds * len(idx)).astype(int)
        for k in range(len(fractions)):
            parts[k].append(idx[cuts[k] : cuts[k + 1]])
    return [np.sort(np.concatenate(p)) for p in parts]


def balance_classes(labels: np.ndarray, rng: np.random.Generator, per_class: int | None = None) -> np.ndarray:
    """Indices keeping the same number of examples per class (the minimum, or ``per_class``)."""
    counts = [int(np.sum(labels == c)) for c in np.unique(labels)]
    n = min(counts) if per_class is None else min(min(counts), int(per_class))
    keep = [rng.permutation(np.flatnonzero(labels == c))[:n] for c in np.unique(labels)]
    return np.sort(np.concatenate(keep))
