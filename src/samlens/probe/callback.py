"""Probe accuracy per feature during training: feature-quality curves over epochs."""

from __future__ import annotations

import time

import torch

from samlens.errors import ConfigError
from samlens.probe.balanced import balanced_probe
from samlens.probe.features import extract_features


class ProbeCallback:
    """Runs the balanced per-feature probe on the probe splits every ``every`` epochs.

    Call it after an epoch with the (0-based or 1-based, as the loop counts) epoch number;
    it probes when ``epoch % every == 0`` and returns the :func:`balanced_probe` result
    plus ``epoch`` and ``probe_seconds``, else ``None``. Features are recomputed each time
    (the model changes), never cached; the model's train/eval mode is restored.
    """

    def __init__(
        self,
        probe_train_dataset: torch.utils.data.Dataset,
        probe_test_dataset: torch.utils.data.Dataset,
        *,
        every: int = 1,
        engine: str = "torch",
        batch_size: int = 256,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        if every < 1:
            raise ConfigError(f"probe every must be a positive number of epochs, got {every}")
        self.train_ds, self.test_ds = probe_train_dataset, probe_test_dataset
        self.every, self.engine, self.batch_size, self.device, self.seed = (
            every,
            engine,
            batch_size,
            device,
            seed,
        )

    def scheduled(self, epoch: int) -> bool:
        return epoch % self.every == 0

    def __call__(self, model: torch.nn.Module, epoch: int) -> dict | None:
        if not self.scheduled(epoch):
            return None
        start = time.perf_counter()
        kw = {"batch_size": self.batch_size, "device": self.device}
        train = extract_features(model, self.train_ds, **kw)
        test = extract_features(model, self.test_ds, **kw)
        # Same seed every epoch: the same balanced subsets and folds, so the curve moves only
        # because the features do.
        result = balanced_probe(train, test, engine=self.engine, seed=self.seed)
        result["epoch"] = epoch
        result["probe_seconds"] = time.perf_counter() - start
        return result
