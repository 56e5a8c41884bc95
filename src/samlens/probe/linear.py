"""A stack of K linear classifiers and the data layout shared by both probe engines.

Every probe (balanced, DFR, transfer) reduces to "fit K logistic regressions that differ
in regularisation strength and/or in which rows they train on, then score them". The
engines (scikit-learn reference, batched torch) only differ in how they fit; scoring and
class bookkeeping live here so both paths share them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from samlens.errors import ConfigError


@dataclass
class LinearModels:
    """K linear classifiers over the same classes.

    ``coef`` is [K, n_out, D] and ``intercept`` [K, n_out]; ``n_out`` is 1 for two classes
    (the logit of ``classes[1]``, scikit-learn's binary convention) and the number of
    classes otherwise (multinomial logits or one-vs-rest scores; both predict by argmax).
    """

    coef: np.ndarray
    intercept: np.ndarray
    classes: np.ndarray

    def decision(self, X: np.ndarray) -> np.ndarray:
        """Scores [K, N, n_out] in float64 (so predictions do not depend on the engine's dtype)."""
        X = np.asarray(X, dtype=np.float64)
        return np.einsum("nd,kod->kno", X, self.coef.astype(np.float64)) + self.intercept[:, None, :]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted class labels [K, N]."""
        scores = self.decision(X)
        idx = (scores[..., 0] > 0).astype(np.int64) if scores.shape[-1] == 1 else scores.argmax(-1)
        return self.classes[idx]


def encode_classes(y: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(sorted class labels, y as indices into them); one class cannot be probed."""
    classes, idx = np.unique(np.asarray(y), return_inverse=True)
    if len(classes) < 2:
        raise ConfigError(f"{what} has a single class ({classes.tolist()}); a probe needs at least two")
    return classes, idx.astype(np.int64)
