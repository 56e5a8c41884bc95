"""From a config to the objects a run needs: dataset, model, optimizer.

Names are checked against the registries before anything is written, so a typo in a
dataset, model or optimizer name fails with the list of valid choices and no run directory.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from samlens import rundir
from samlens.errors import ConfigError
from samlens.train.config import ExperimentConfig, derive_seed, load_config

# Optimizers that take no perturbation radius; every other registered one gets ``rho``.


def _registries() -> tuple[Any, Any, Any]:
    import samlens.data as data
    import samlens.models as models
    import samlens.optim as optim

    # Registering the pretrained models has a side effect only; a missing optional
    # package must not make the other models unusable.
    with contextlib.suppress(ImportError):
        import samlens.models.pretrained  # noqa: F401
    return data, models, optim


def check_names(cfg: ExperimentConfig) -> None:
    """Raise ``ConfigError`` naming the valid choices if a registry name is unknown."""
    data, models, optim = _registries()
    for kind, name, valid in (
        ("dataset", cfg.data.name, data.list_datasets()),
        ("model", cfg.model.name, models.list_models()),
        ("optimizer", cfg.optim.name, optim.list_optimizers()),
    ):
        if name not in valid:
            raise ConfigError(f"unknown {kind} {name!r}; valid choices: {', '.join(sorted(valid))}")
    base = optim.registry.BASE_OPTIMIZERS
    if cfg.optim.base not in base:
        raise ConfigError(f"unknown optim.base {cfg.optim.base!r}; valid choices: {', '.join(base)}")
    # The engine is first used after training (and by ``samlens probe``): check it now.
    from samlens.probe.engine import get_engine

    try:
        get_engine(cfg.probe.engine)
    except ConfigError as err:
        raise ConfigError(f"probe.engine: {err}") from None
    _check_device("probe.engine", cfg.probe.engine.partition(":")[2])


def _check_device(key: str, device: str) -> None:
    """A device named in the config must exist here, or the run fails after training."""
    if not device:
        return
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"{key}: unknown device {device!r} (e.g. cpu, cuda, cuda:1)") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key}: device {device!r} is not available on this machine")


def build_dataset(cfg: ExperimentConfig) -> Any:
    """The run's ``SpuriousDataset``, built from the derived seed."""
    data, _, _ = _registries()
    return data.get_dataset(cfg.data.name, root=cfg.data.root, seed=derive_seed(cfg), **cfg.data.options)


def build_model(cfg: ExperimentConfig, dataset: Any, *, load_pretrained: bool = True) -> nn.Module:
    """The run's model, initialised from the derived seed (so paired runs start equal).

    ``load_pretrained=False`` skips reading ``model.pretrained`` (used when a checkpoint
    will overwrite the weights anyway).
    """
    _, models, _ = _registries()
    options = dict(cfg.model.options)
    if cfg.model.pretrained is not None and load_pretrained:
        options["pretrained"] = cfg.model.pretrained
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(derive_seed(cfg))
        return models.get_model(
            cfg.model.name, num_classes=dataset.num_classes, input_shape=tuple(dataset.input_shape), **options
        )


def optimizer_options(cfg: ExperimentConfig) -> dict[str, Any]:
    """Keyword arguments for ``build_optimizer`` from ``cfg.optim``."""
    o = cfg.optim
    options: dict[str, Any] = {"lr": o.lr, "momentum": o.momentum, "weight_decay": o.weight_decay}
    if _registries()[2].perturbs(o.name):
        options["rho"] = o.rho
        options["base"] = o.base
    options.update(o.options)
    return options


def build_optimizer(cfg: ExperimentConfig, model: nn.Module) -> torch.optim.Optimizer:
    _, _, optim = _registries()
    return optim.build_optimizer(cfg.optim.name, model, **optimizer_options(cfg))


# ---------------------------------------------------------------------------------------
# a run directory back into its objects


def read_config(run_dir: str | os.PathLike[str]) -> ExperimentConfig:
    """The resolved config a run was started with."""
    return load_config(Path(run_dir) / rundir.CONFIG)


def load_run(
    run_dir: str | os.PathLike[str], *, map_location: str = "cpu"
) -> tuple[ExperimentConfig, Any, Any]:
    """``(cfg, model, dataset)`` of a run; the model holds the checkpoint's weights, in eval mode."""
    run_dir = Path(run_dir)
    if not (run_dir / rundir.CONFIG).exists():
        raise ConfigError(f"{str(run_dir)!r} is not a run directory (no {rundir.CONFIG})")
    cfg = read_config(run_dir)
    ckpt = rundir.load_checkpoint(run_dir, map_location)
    if ckpt is None:
        raise ConfigError(f"run {str(run_dir)!r} has no checkpoint yet")
    dataset = build_dataset(cfg)
    model = build_model(cfg, dataset, load_pretrained=False)
    load_weights(model, ckpt["model"], run_dir / rundir.CHECKPOINT)
    model.eval()
    return cfg, model, dataset


def load_weights(model: nn.Module, state: dict[str, Any], path: Path) -> None:
    """``model.load_state_dict(state)``; a mismatch is a damaged or foreign checkpoint."""
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(
            f"checkpoint {str(path)!r} does not fit the run's model: {rundir.error_line(err)}"
        ) from None
