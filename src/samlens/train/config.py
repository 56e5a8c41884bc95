"""Typed experiment configuration: dataclasses, YAML files and dotted overrides.

A config is plain data. ``load_config`` merges, in order, the defaults, a YAML file and
dotted overrides (``"optim.rho=0.1"`` or ``{"optim.rho": 0.1}``), then validates every
key and type so that a typo fails before any run directory exists.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from samlens.errors import ConfigError
from samlens.rundir import Scalar, atomic_write_text, flatten

SCHEDULES = ("cosine", "step", "constant")
PROBE_METHODS = ("balanced", "dfr", "transfer")
BN_STATS = ("recompute", "running")


@dataclass
class DataConfig:
    """Which dataset to train on (``samlens.data.get_dataset(name, root, **options)``)."""

    name: str = "mnist5k_dominoes"
    root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 128
    num_workers: int = 0


@dataclass
class ModelConfig:
    """Which model (``samlens.models.get_model``); ``pretrained`` is a local weights file."""

    name: str = "small_cnn"
    options: dict[str, Any] = field(default_factory=dict)
    pretrained: str | None = None


@dataclass
class OptimConfig:
    """Which optimizer (``samlens.optim.build_optimizer``).

    ``rho`` is passed only to optimizers that perturb (everything except the plain base
    optimizers); ``options`` holds any further factory keyword arguments.
    """

    name: str = "sgd"
    base: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    rho: float = 0.05
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    """Length, schedule and numerics of training.

    ``steps`` (optimizer steps), when set, caps training before ``epochs`` is reached.
    ``eval_every`` counts epochs, ``log_every`` and ``checkpoint_every`` count steps
    (``checkpoint_every=0``: checkpoint at the end of every epoch only).
    """

    epochs: int = 10
    steps: int | None = None
    seed: int = 0
    schedule: str = "cosine"
    bf16: bool = False
    channels_last: bool = False
    deterministic: bool = False
    eval_every: int = 1
    log_every: int = 50
    checkpoint_every: int = 0
    tensorboard: bool = False
    # BatchNorm running statistics before evaluation and probing (samlens.train.bn):
    # "recompute" = exact average over the training split, "running" = the moving averages.
    bn_stats: str = "recompute"


@dataclass
class ProbeConfig:
    """Feature-quality probes: ``every`` epochs during training (0 = only after training).

    ``enabled=False`` skips probing altogether (the final event then has no probe metrics).
    """

    enabled: bool = True
    every: int = 0
    engine: str = "torch"
    method: str = "balanced"


@dataclass
class ExperimentConfig:
    """One training run: data, model, optimizer, training and probing settings."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    name: str = "experiment"


# ---------------------------------------------------------------------------------------
# dict <-> dataclass


def config_to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """A plain nested dict (YAML/JSON-serialisable) of ``cfg``."""
    return dataclasses.asdict(cfg)


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key} must be {_type_name(tp)}, got {value!r}")
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    is_bool = isinstance(value, bool)
    if tp is bool and is_bool:
        return value
    if tp is int and isinstance(value, int) and not is_bool:
        return value
    if tp is float and isinstance(value, (int, float)) and not is_bool:
        return float(value)
    if tp is str and isinstance(value, str):
        return value
    raise ConfigError(f"{key} must be {_type_name(tp)}, got {value!r}")


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        where = prefix.rstrip(".") or "config"
        raise ConfigError(f"unknown key {prefix}{unknown[0]} in {where}; valid keys: {', '.join(names)}")
    kwargs: dict[str, Any] = {}
    for name in names:
        if name not in data:
            continue
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, data[name], f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(data[name], tp, f"{prefix}{name}")
    return cls(**kwargs)


def _check_values(cfg: ExperimentConfig) -> None:
    """Range and choice checks that types alone cannot express."""
    checks = [
        (cfg.optim.rho >= 0, f"optim.rho must be >= 0, got {cfg.optim.rho}"),
        (cfg.optim.lr > 0, f"optim.lr must be > 0, got {cfg.optim.lr}"),
        (cfg.optim.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {cfg.optim.weight_decay}"),
        (cfg.data.batch_size > 0, f"data.batch_size must be > 0, got {cfg.data.batch_size}"),
        (cfg.data.num_workers >= 0, f"data.num_workers must be >= 0, got {cfg.data.num_workers}"),
        (cfg.train.epochs > 0, f"train.epochs must be > 0, got {cfg.train.epochs}"),
        (
            cfg.train.steps is None or cfg.train.steps > 0,
            f"train.steps must be > 0 or null, got {cfg.train.steps}",
        ),
        (cfg.train.eval_every >= 0, f"train.eval_every must be >= 0, got {cfg.train.eval_every}"),
        (cfg.train.log_every > 0, f"train.log_every must be > 0, got {cfg.train.log_every}"),
        (
            cfg.train.checkpoint_every >= 0,
            f"train.checkpoint_every must be >= 0, got {cfg.train.checkpoint_every}",
        ),
        (cfg.probe.every >= 0, f"probe.every must be >= 0, got {cfg.probe.every}"),
        (
            cfg.train.schedule in SCHEDULES,
            f"unknown train.schedule {cfg.train.schedule!r}; valid choices: {', '.join(SCHEDULES)}",
        ),
        (
            cfg.train.bn_stats in BN_STATS,
            f"unknown train.bn_stats {cfg.train.bn_stats!r}; valid choices: {', '.join(BN_STATS)}",
        ),
        (
            cfg.probe.method in PROBE_METHODS,
            f"unknown probe.method {cfg.probe.method!r}; valid choices: {', '.join(PROBE_METHODS)}",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    _check_name(cfg.name)


def _check_name(name: str) -> None:
    """``name`` becomes the directory ``runs/<name>-<hash>``: one plain path component."""
    if not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ConfigError(
            f"name {name!r} must be a plain name without '/', '\\' or '..' "
            "(it names the run directory under runs/)"
        )


def config_from_dict(data: dict[str, Any]) -> ExperimentConfig:
    """Validate a nested dict (missing keys take defaults) into an ``ExperimentConfig``."""
    cfg = _build(ExperimentConfig, data, "")
    _check_values(cfg)
    return cfg


# ---------------------------------------------------------------------------------------
# overrides and files


def _parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.key=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {key}: {'.'.join(parts[: i + 1])} is not a section")
        node = child
    node[parts[-1]] = value


def apply_overrides(tree: dict[str, Any], overrides: list[str] | dict[str, Any] | None) -> dict[str, Any]:
    """Return a copy of ``tree`` with dotted overrides applied (not yet validated)."""
    tree = json.loads(json.dumps(tree))
    if not overrides:
        return tree
    items = overrides.items() if isinstance(overrides, dict) else map(_parse_override, overrides)
    for key, value in items:
        _set_dotted(tree, key, value)
    return tree


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping; a missing or malformed file is a user error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else "invalid YAML"
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {first}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping")
    return data


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
) -> ExperimentConfig:
    """Defaults ← YAML file at ``path`` ← dotted ``overrides``, validated.

    Raises ``ConfigError`` (one line, naming the valid keys or choices) on unknown keys,
    wrong types or out-of-range values.
    """
    tree = read_yaml(path) if path is not None else {}
    return config_from_dict(apply_overrides(tree, overrides))


def config_to_yaml(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


def dump_config(cfg: ExperimentConfig, path: str | os.PathLike[str]) -> None:
    """Write ``cfg`` as YAML atomically (temp file + rename), mode ``0666 & ~umask``."""
    atomic_write_text(path, config_to_yaml(cfg))


# ---------------------------------------------------------------------------------------
# flattening, hashing, seeds


def flatten_config(cfg: ExperimentConfig) -> dict[str, Scalar]:
    """``{"optim.rho": 0.05, "data.options.n": 10, ...}``: one scalar per dotted key."""
    return flatten(config_to_dict(cfg))


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def config_hash(cfg: ExperimentConfig) -> str:
    """Stable 12-hex-digit hash of the whole resolved config."""
    return _digest(config_to_dict(cfg))[:12]


def derive_seed(cfg: ExperimentConfig) -> int:
    """The run's seed, from the data and model configs and ``train.seed`` only.

    The optimizer, schedule, run length, probing, ``data.options.shuffle_easy`` and the run's name do
    not enter, so an SGD run, a SAM run and the hard-only ceiling with the same ``train.seed`` get the
    same images, the same initialisation and the same data order.
    """
    d = config_to_dict(cfg)
    # The worker count changes speed, not batches: every count seeds like the default 0.
    d["data"]["num_workers"] = 0
    # The hard-only ceiling must be the SGD run with only the easy block re-drawn (the dataset draws it
    # from its own stream): the same images, initialisation and data order, so shuffle_easy is not seeded.
    if isinstance(d["data"].get("options"), dict):
        d["data"]["options"].pop("shuffle_easy", None)
    return int(_digest({"data": d["data"], "model": d["model"], "seed": d["train"]["seed"]})[:8], 16)
