"""The probe step of a run: per-feature probe accuracy of the model's frozen features.

Probes use the dataset's held-out ``probe_train`` / ``probe_test`` splits (never the
training split); datasets without them are probed on ``val`` / ``test``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from samlens.train.config import ExperimentConfig

Prober = Callable[[nn.Module, int], "dict[str, float] | None"]


def probe_splits(dataset: Any) -> tuple[str, str]:
    if "probe_train" in dataset.splits and "probe_test" in dataset.splits:
        return "probe_train", "probe_test"
    return "val", "test"


def make_prober(cfg: ExperimentConfig, dataset: Any, device: torch.device) -> Prober | None:
    """``prober(model, epoch) -> metrics`` for ``cfg.probe``, or None when probing is unavailable."""
    try:
        from samlens.probe import ProbeCallback
    except ImportError:
        return None
    train_split, test_split = probe_splits(dataset)
    callback = ProbeCallback(
        dataset.split(train_split),
        dataset.split(test_split),
        every=1,  # the runner decides when to probe; the callback always runs when asked
        engine=cfg.probe.engine,
    )

    def prober(model: nn.Module, epoch: int) -> dict[str, float] | None:
        return callback(model, epoch)

    return prober
