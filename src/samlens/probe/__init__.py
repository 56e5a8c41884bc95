"""Feature-quality evaluation: balanced probes, DFR, transfer probes, metrics.

All accuracy definitions live in :mod:`samlens.probe.metrics`.
"""

from samlens.probe.balanced import balanced_probe
from samlens.probe.features import Features, extract_features, feature_cache_key

__all__ = ["Features", "balanced_probe", "extract_features", "feature_cache_key"]
