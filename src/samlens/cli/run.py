"""``samlens run --config configs/x.yaml --optim.rho 0.1``: train one config into a run directory.

Every config key is an option ``--section.key VALUE``; the values go, in command-line order,
as dotted overrides into ``samlens.train.config.load_config``, which reads the file, types and
checks everything once.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from pathlib import Path
from typing import Any

from samlens.errors import ConfigError

COMMAND = "run"
HELP = "Train one experiment config into a run directory (resumes or skips an existing one)."


def _config_options(cls: type, prefix: str = "") -> list[tuple[str, Any, dataclasses.Field]]:
    """``(dotted key, annotation, field)`` for every leaf of the config dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out += _config_options(hints[f.name], f"{prefix}{f.name}.")
        else:
            out.append((f"{prefix}{f.name}", hints[f.name], f))
    return out


def _option_help(tp: Any, f: dataclasses.Field) -> str:
    from samlens.train.schema import DOMAIN_TEXT
    from samlens.validate import type_name

    default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
    choices = f.metadata.get("choices")
    text = type_name(tp).replace("dict[str, Any]", "mapping")
    if f.metadata.get("domain") in DOMAIN_TEXT:
        text += f" {DOMAIN_TEXT[f.metadata['domain']]}"
    if choices:
        text += f", one of {', '.join(choices)}"
    return f"{text} (default: {default!r})".replace("%", "%%")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from samlens.train.config import ExperimentConfig

    parser.add_argument("--config", default=None, metavar="FILE", help="YAML config file")
    parser.add_argument("--run_dir", default=None, help="run directory (default: runs/<name>-<config hash>)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or log lines on the terminal")
    parser.add_argument("--print_config", action="store_true", help="print the resolved config and exit")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for this run (default 1, measured fastest for demo-size runs on a shared "
        "2-core machine; more can pay off for larger models on an idle one); recorded in meta.json",
    )
    group = parser.add_argument_group("config keys (override the file; VALUE is YAML, text for strings)")
    for key, tp, f in _config_options(ExperimentConfig):
        # Each value is kept as (key, text) in command-line order; the loader types and checks it.
        group.add_argument(
            f"--{key}",
            dest="overrides",
            action="append",
            type=lambda text, key=key: (key, text),
            metavar="VALUE",
            help=_option_help(tp, f),
        )
    parser.set_defaults(overrides=[])
    parser.epilog = "Any config key can be overridden as --section.key VALUE, e.g. --optim.rho 0.1."


def resolve_config(args: argparse.Namespace) -> Any:
    """The ExperimentConfig of ``--config`` and the ``--section.key`` overrides."""
    from samlens.train.config import load_config

    overrides = [f"{key}={text}" for key, text in args.overrides]
    try:
        return load_config(args.config, overrides)
    except ConfigError as err:
        if err.key is not None and any(key == err.key for key, _ in args.overrides):
            raise ConfigError(f'Parser key "{err.key}": {err}') from None
        raise


def run(args: argparse.Namespace) -> int:
    from samlens.rundir import FAILED, is_done
    from samlens.train.config import config_hash, config_to_yaml
    from samlens.train.runner import run_experiment

    cfg = resolve_config(args)
    if args.print_config:
        print(config_to_yaml(cfg), end="")
        return 0
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / f"{cfg.name}-{config_hash(cfg)}"
    run_experiment(cfg, run_dir, quiet=args.quiet, threads=args.threads)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun rank 0 speaks for the run
        return 0 if is_done(run_dir) or (run_dir / FAILED).exists() else 1
    if is_done(run_dir):
        print(run_dir)
        return 0
    reason = (run_dir / FAILED).read_text().strip() if (run_dir / FAILED).exists() else "unknown reason"
    print(f"samlens run: run failed: {reason} ({run_dir})")
    return 1
