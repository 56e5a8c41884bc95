"""Feature-quality evaluation: balanced probes, DFR, transfer probes, metrics.

All accuracy definitions live in :mod:`samlens.probe.metrics`.
"""

from samlens.probe.balanced import balanced_probe
from samlens.probe.callback import ProbeCallback
from samlens.probe.dfr import dfr
from samlens.probe.features import Features, extract_features, feature_cache_key
from samlens.probe.transfer import transfer_probe

__all__ = [
    "Features",
    "ProbeCallback",
    "balanced_probe",
    "dfr",
    "extract_features",
    "feature_cache_key",
    "transfer_probe",
]
