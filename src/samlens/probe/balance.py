"""Subsampling that removes the correlation between attributes (science spec §5 step 2, §6)."""

from __future__ import annotations

import numpy as np

from samlens.errors import ConfigError


def balance_cells(
    keys: np.ndarray, rng: np.random.Generator, *, cells: np.ndarray | None = None, what: str = "split"
) -> np.ndarray:
    """Indices of a subsample with every cell cut to the size of the smallest one.

    ``keys`` is [N] (one cell id per row) or [N, A] (a tuple of attribute values per row,
    e.g. (label, other)). ``cells`` lists every cell that must be present; by default the
    full grid of the observed values of each column, so a missing (A, B) combination is an
    error instead of a silently dependent "balanced" set. Indices come back sorted.
    """
    keys = np.asarray(keys)
    if keys.ndim == 1:
        keys = keys[:, None]
    if cells is None:
        axes = [np.unique(keys[:, j]) for j in range(keys.shape[1])]
        cells = np.array(np.meshgrid(*axes, indexing="ij")).reshape(len(axes), -1).T
    members = []
    for cell in np.asarray(cells).reshape(len(cells), -1):
        idx = np.flatnonzero((keys == cell).all(axis=1))
        if len(idx) == 0:
            raise ConfigError(f"cell {tuple(cell.tolist())} has no examples in {what}; cannot balance")
        members.append(idx)
    size = min(len(m) for m in members)
    picked = [rng.permutation(m)[:size] for m in members]
    return np.sort(np.concatenate(picked))
