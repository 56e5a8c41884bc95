"""The probe step of a run: feature-quality numbers of the model's frozen features.

Probes use the dataset's held-out ``probe_train`` / ``probe_test`` splits (never the
training split); datasets without them are probed on ``val`` / ``test``. The numbers
themselves come from ``samlens.probe``; this module only picks splits and flattens the
result into scalar ``results.jsonl`` metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from samlens.errors import ConfigError
from samlens.train.bn import recompute_bn_stats
from samlens.train.config import PROBE_METHODS, ExperimentConfig

Prober = Callable[[nn.Module, int], "dict[str, float] | None"]


def probe_splits(dataset: Any) -> tuple[str, str]:
    if "probe_train" in dataset.splits and "probe_test" in dataset.splits:
        return "probe_train", "probe_test"
    return "val", "test"


def scalar_metrics(result: dict[str, Any]) -> dict[str, float]:
    """Numbers only, nested per-group dicts flattened as ``key/<group>``."""
    out: dict[str, float] = {}
    for key, value in result.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out[f"{key}/{sub}"] = float(v)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
    return out


def _check_fixed_c(method: str, C: float | None) -> None:
    if C is not None and method != "balanced":
        raise ConfigError(f"probe.C fixes the balanced probe's C; probe method {method!r} chooses its own")


def run_probe(
    method: str,
    model: nn.Module,
    dataset: Any,
    *,
    engine: str = "torch",
    device: torch.device | str = "cpu",
    bn_stats: str = "running",
    C: float | None = None,
) -> dict[str, float]:
    """``balanced`` (per-feature probe accuracy), ``dfr`` or ``transfer`` metrics of ``model``.

    ``bn_stats="recompute"`` first sets BatchNorm running statistics to their average over the
    training split (``samlens.train.bn``), as evaluation does. ``C`` fixes the balanced probe's
    regularisation (no CV search); the other methods refuse it.
    """
    import samlens.probe as probe

    if method not in PROBE_METHODS:
        raise ConfigError(f"unknown probe method {method!r}; valid choices: {', '.join(PROBE_METHODS)}")
    fn_name = {"balanced": "balanced_probe", "dfr": "dfr", "transfer": "transfer_probe"}[method]
    fn = getattr(probe, fn_name, None)
    if fn is None:
        raise ConfigError(f"probe method {method!r} is not available in this installation")

    _check_fixed_c(method, C)
    if bn_stats == "recompute":
        recompute_bn_stats(model, dataset, device=device)

    def feats(split: str) -> Any:
        return probe.extract_features(model, dataset.split(split), device=device)

    if method == "balanced":
        train_split, test_split = probe_splits(dataset)
        return scalar_metrics(fn(feats(train_split), feats(test_split), engine=engine, C=C))
    if method == "dfr":
        # DFR's group metrics share names with the model's own; the prefix keeps them apart.
        result = fn(feats("train"), feats("val"), feats("test"), engine=engine)
        return {f"dfr_{k}": v for k, v in scalar_metrics(result).items()}
    result = fn(feats("test"), engine=engine)
    return {f"transfer_{k}": v for k, v in scalar_metrics(result).items()}


def make_prober(cfg: ExperimentConfig, dataset: Any, device: torch.device) -> Prober | None:
    """``prober(model, epoch) -> metrics`` running ``cfg.probe.method``; None without probe splits."""
    if not cfg.probe.enabled:
        return None
    if cfg.probe.method == "balanced" and "probe_train" not in dataset.splits and dataset.num_other < 2:
        return None
    _check_fixed_c(cfg.probe.method, cfg.probe.C)
    if cfg.probe.method == "dfr" and len(dataset.labels("val")) == 0:
        # Checked before training: DFR refits the last layer on val, which is empty here.
        raise ConfigError(
            f"probe.method dfr refits the last layer on the val split, and dataset {cfg.data.name!r} has "
            "an empty val split (e.g. cifar_mnist val_fraction=0); use probe.method balanced or a val split"
        )

    def prober(model: nn.Module, epoch: int) -> dict[str, float] | None:
        return run_probe(
            cfg.probe.method,
            model,
            dataset,
            engine=cfg.probe.engine,
            device=device,
            bn_stats=cfg.train.bn_stats,
            C=cfg.probe.C,
        )

    return prober
