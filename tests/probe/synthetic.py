"""Synthetic embeddings with known structure, shared by the probe tests.

Attribute A (the label) shifts feature 0 by ±mu_a, attribute B (the other one) shifts
feature 1 by ±mu_b; the rest is unit Gaussian noise. With balanced data the Bayes
accuracy of decoding an attribute is Φ(mu) and nothing else in the features helps.
A and B agree with probability ``agree`` (a spurious/redundant correlation).
"""

from __future__ import annotations

import math

import numpy as np

from samlens.probe import Features


def phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def make_features(
    n: int,
    *,
    dim: int = 8,
    mu_a: float = 4.0,
    mu_b: float = 0.5,
    agree: float = 0.8,
    seed: int = 0,
    group_sizes: tuple[int, int, int, int] | None = None,
) -> Features:
    """n examples (or exactly ``group_sizes`` per group label·2+other) with the structure above."""
    rng = np.random.default_rng(seed)
    if group_sizes is None:
        a = rng.integers(0, 2, n)
        b = np.where(rng.random(n) < agree, a, 1 - a)
    else:
        g = np.repeat(np.arange(4), group_sizes)
        a, b = g // 2, g % 2
    X = rng.normal(size=(len(a), dim))
    X[:, 0] += mu_a * (2 * a - 1)
    X[:, 1] += mu_b * (2 * b - 1)
    return Features(X, a, b, 2 * a + b)
