"""Typed experiment configuration: dataclasses, YAML files and dotted overrides.

A config is plain data. ``load_config`` merges, in order, the defaults, a YAML file and
dotted overrides (``"optim.rho=0.1"`` or ``{"optim.rho": 0.1}``), then validates every
key, type and numeric domain (``samlens.train.schema``) so that a typo fails before any run
directory exists.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from samlens.errors import ConfigError
from samlens.rundir import Scalar, atomic_write_text, flatten
from samlens.train.loggers import LOGGERS
from samlens.train.schema import DOMAINS, Overrides, build, load_dataclass, option
from samlens.validate import check_choice

SCHEDULES = ("cosine", "step", "constant")
PROBE_METHODS = ("balanced", "dfr", "transfer")
BN_STATS = ("recompute", "running")


def _optim_options(key: str, options: dict[str, Any]) -> dict[str, Any]:
    """The optimizer's free-form options, returned as given: the hyper-parameters among them are
    checked against their domains."""
    for name, value in options.items():
        if name in OPTIM_OPTION_DOMAINS:
            DOMAINS[OPTIM_OPTION_DOMAINS[name]](f"{key}.{name}", value)
    return options


def _run_name(key: str, name: str) -> str:
    """``name`` becomes the directory ``runs/<name>-<hash>``: one plain path component."""
    if not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ConfigError(
            f"name {name!r} must be a plain name without '/', '\\' or '..' "
            "(it names the run directory under runs/)"
        )
    return name


def _logger_names(key: str, names: list[str]) -> list[str]:
    """Registered loggers (``samlens.train.loggers``), each once, in the order given."""
    for name in names:
        check_choice(key, name, LOGGERS.names())
    return list(dict.fromkeys(names))


#: Hyper-parameters that may also appear in ``optim.options`` (factory keyword arguments).
OPTIM_OPTION_DOMAINS = {
    "rho": "rho",
    "lr": "lr",
    "momentum": "momentum",
    "betas": "betas",
    "weight_decay": "weight_decay",
    "eps": "eps",
}


@dataclass
class DataConfig:
    """Which dataset to train on (``samlens.data.get_dataset(name, root, **options)``).

    ``batch_size`` is per process. ``global_batch_size``, when set, replaces it: each of W
    processes takes ``global_batch_size / W`` of every batch, and the derived seed is that of a
    one-process run with ``batch_size = global_batch_size``, so a DDP run and a one-process run
    are a pair (the same initialisation and the same global batches).
    """

    name: str = "mnist5k_dominoes"
    root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = option(128, domain="size")
    num_workers: int = option(0, domain="count")
    global_batch_size: int | None = option(None, domain="size")


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
    lr: float = option(0.05, domain="lr")
    momentum: float = option(0.9, domain="momentum")
    weight_decay: float = option(5e-4, domain="weight_decay")
    rho: float = option(0.05, domain="rho")
    # Free-form factory arguments; the hyper-parameters among them are checked by name.
    options: dict[str, Any] = option(factory=dict, domain=_optim_options)


@dataclass
class TrainConfig:
    """Length, schedule and numerics of training.

    ``steps`` (optimizer steps), when set, caps training before ``epochs`` is reached.
    ``eval_every`` counts epochs, ``log_every`` and ``checkpoint_every`` count steps
    (``checkpoint_every=0``: checkpoint at the end of every epoch only; ``eval_every=0``:
    evaluate after training only). ``loggers`` names where metrics go besides ``results.jsonl``
    (``tensorboard``, ``csv``, ``wandb``, ``mlflow``); ``tensorboard: true`` adds ``tensorboard``.
    """

    epochs: int = option(10, domain="size")
    steps: int | None = option(None, domain="size")
    seed: int = 0
    schedule: str = option("cosine", choices=SCHEDULES)
    bf16: bool = False
    channels_last: bool = False
    deterministic: bool = False
    eval_every: int = option(1, domain="count")
    log_every: int = option(50, domain="size")
    checkpoint_every: int = option(0, domain="count")
    tensorboard: bool = False
    loggers: list[str] = option(factory=list, domain=_logger_names)
    # BatchNorm running statistics before evaluation and probing (samlens.train.bn):
    # "recompute" = exact average over the training split, "running" = the moving averages.
    bn_stats: str = option("recompute", choices=BN_STATS)


@dataclass
class ProbeConfig:
    """Feature-quality probes: ``every`` epochs during training (0 = only after training).

    ``enabled=False`` skips probing altogether (the final event then has no probe metrics). ``C``
    fixes the balanced probe's inverse regularisation instead of choosing it by 5-fold CV in every
    probe: chosen once for a sweep, it takes the search's noise out of the comparison between runs,
    and on wide features (the paper CNN's 1,024) one fit replaces 36.
    """

    enabled: bool = True
    every: int = option(0, domain="count")
    engine: str = "torch"
    method: str = option("balanced", choices=PROBE_METHODS)
    C: float | None = option(None, domain="positive")


@dataclass
class ExperimentConfig:
    """One training run: data, model, optimizer, training and probing settings."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    name: str = option("experiment", domain=_run_name)


# ---------------------------------------------------------------------------------------
# dict <-> dataclass


#: Options left out of a config's dict (so of config.yaml, results records and the hash) while at
#: their default: a config that does not use one reads, flattens and hashes as before it existed.
_OMITTED_AT_DEFAULT = (("train", "loggers"),)


def config_to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """A plain nested dict (YAML/JSON-serialisable) of ``cfg``; ``train.loggers`` only when set."""
    d = dataclasses.asdict(cfg)
    for section, key in _OMITTED_AT_DEFAULT:
        if not d[section][key]:
            del d[section][key]
    return d


def config_from_dict(data: dict[str, Any]) -> ExperimentConfig:
    """Validate a nested dict (missing keys take defaults) into an ``ExperimentConfig``."""
    return build(ExperimentConfig, data)


# ---------------------------------------------------------------------------------------
# overrides and files


def load_config(path: str | os.PathLike[str] | None = None, overrides: Overrides = None) -> ExperimentConfig:
    """Defaults ← YAML file at ``path`` ← dotted ``overrides``, validated.

    Raises ``ConfigError`` (one line, naming the valid keys or choices) on unknown keys,
    wrong types or out-of-range values; an error in the file's content names the file.
    """
    return load_dataclass(ExperimentConfig, path, overrides)


def config_to_yaml(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


def dump_config(cfg: ExperimentConfig, path: str | os.PathLike[str]) -> None:
    """Write ``cfg`` as YAML atomically (temp file + rename), mode ``0666 & ~umask``."""
    atomic_write_text(path, config_to_yaml(cfg))


# ---------------------------------------------------------------------------------------
# flattening, hashing, seeds


def flatten_config(cfg: ExperimentConfig) -> dict[str, Scalar]:
    """``{"optim.rho": 0.05, "data.options.n": 10, ...}``: one scalar per dotted key. Where a run
    reports (``train.loggers``) is left out, so reports never split runs by their loggers."""
    flat = flatten(config_to_dict(cfg))
    for section, key in _NEVER_HASHED:
        flat.pop(f"{section}.{key}", None)
    return flat


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


#: Options added after runs were recorded: they enter the hash only when set, so a run directory
#: made before an option existed keeps its name (and a relaunched sweep finds it).
_HASHED_WHEN_SET = (("probe", "C"), ("data", "global_batch_size"))
#: Where a run reports, not what it computes: never hashed, so a run resumed with other loggers is the
#: same run in the same directory.
_NEVER_HASHED = (("train", "loggers"),)


def config_hash(cfg: ExperimentConfig) -> str:
    """Stable 12-hex-digit hash of the whole resolved config."""
    d = config_to_dict(cfg)
    for section, key in _HASHED_WHEN_SET:
        if d[section].get(key) is None:
            del d[section][key]
    for section, key in _NEVER_HASHED:
        d[section].pop(key, None)
    return _digest(d)[:12]


def process_batch_size(cfg: ExperimentConfig, world_size: int) -> int:
    """Examples per process in every step: ``data.batch_size``, or the process's share of
    ``data.global_batch_size`` (ConfigError when the processes cannot share it evenly)."""
    total = cfg.data.global_batch_size
    if total is None:
        return cfg.data.batch_size
    if total % world_size:
        raise ConfigError(
            f"data.global_batch_size {total} does not split evenly across {world_size} processes"
        )
    return total // world_size


def derive_seed(cfg: ExperimentConfig) -> int:
    """The run's seed, from the data and model configs and ``train.seed`` only.

    The optimizer, schedule, run length, probing, ``data.options.shuffle_easy`` and the run's name do
    not enter, so an SGD run, a SAM run and the hard-only ceiling with the same ``train.seed`` get the
    same images, the same initialisation and the same data order.
    """
    d = config_to_dict(cfg)
    # The worker count changes speed, not batches: every count seeds like the default 0.
    d["data"]["num_workers"] = 0
    # A global batch seeds like the one-process run of that batch size (its DDP pair).
    global_batch = d["data"].pop("global_batch_size", None)
    if global_batch is not None:
        d["data"]["batch_size"] = global_batch
    # The hard-only ceiling must be the SGD run with only the easy block re-drawn (the dataset draws it
    # from its own stream): the same images, initialisation and data order, so shuffle_easy is not seeded.
    if isinstance(d["data"].get("options"), dict):
        d["data"]["options"].pop("shuffle_easy", None)
    return int(_digest({"data": d["data"], "model": d["model"], "seed": d["train"]["seed"]})[:8], 16)
