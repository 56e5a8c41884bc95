"""``samlens run --config configs/x.yaml --optim.rho 0.1``: train one config into a run directory.

Options are parsed by jsonargparse from the ``ExperimentConfig`` dataclasses (typed,
YAML-aware, dotted keys). The ``samlens`` entry point is plain argparse, so this module
mirrors jsonargparse's option names into the sub-command and forwards them, in order,
to the jsonargparse parser; the result is validated once more by ``config_from_dict``
(ranges and choices that types cannot express).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from samlens._optional import require
from samlens.errors import ConfigError

COMMAND = "run"
HELP = "Train one experiment config into a run directory (resumes or skips an existing one)."

_OWN = ("--run_dir", "--quiet", "--print_config", "--threads", "--help", "-h")


def config_parser() -> Any:
    """The jsonargparse parser for ``ExperimentConfig`` (``--config FILE`` plus dotted keys)."""
    with require("cli"):
        from jsonargparse import ActionConfigFile, ArgumentParser

    from samlens.train.config import ExperimentConfig

    parser = ArgumentParser(prog="samlens run", exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile, help="YAML config file")
    parser.add_class_arguments(ExperimentConfig, nested_key=None, as_group=False)
    return parser


class _Forward(argparse.Action):
    """Collect ``(option, value)`` pairs in command-line order for jsonargparse."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
        forwarded = list(getattr(namespace, "forward", None) or [])
        forwarded.append((option_string, values))
        namespace.forward = forwarded


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    parser.set_defaults(forward=[])
    for action in config_parser()._actions:
        for option in action.option_strings:
            if option in _OWN:
                continue
            help_text = "YAML config file" if option == "--config" else argparse.SUPPRESS
            parser.add_argument(option, action=_Forward, dest="forward", metavar="VALUE", help=help_text)
    parser.epilog = "Any config key can be overridden as --section.key VALUE, e.g. --optim.rho 0.1."


def _one_line(err: BaseException) -> str:
    return " ".join(part.strip() for part in str(err).splitlines() if part.strip())


def resolve_config(forward: list[tuple[str, str]]) -> Any:
    """Parse forwarded options with jsonargparse and validate them into an ExperimentConfig."""
    import yaml

    from samlens.train.config import config_from_dict, load_config

    for option, value in forward:
        if option == "--config":
            load_config(value)  # our own check first: its messages list the valid keys
    argv = [item for pair in forward for item in pair]
    parser = config_parser()
    try:
        namespace = parser.parse_args(argv)
        tree = yaml.safe_load(parser.dump(namespace))
    except (argparse.ArgumentError, ValueError, TypeError, OSError) as err:
        raise ConfigError(_one_line(err)) from None
    tree.pop("config", None)
    return config_from_dict(tree)


def run(args: argparse.Namespace) -> int:
    from samlens.rundir import FAILED, is_done
    from samlens.train.config import config_hash, config_to_yaml
    from samlens.train.runner import run_experiment

    cfg = resolve_config(args.forward)
    if args.print_config:
        print(config_to_yaml(cfg), end="")
        return 0
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / f"{cfg.name}-{config_hash(cfg)}"
    run_experiment(cfg, run_dir, quiet=args.quiet, threads=args.threads)
    if is_done(run_dir):
        print(run_dir)
        return 0
    reason = (run_dir / FAILED).read_text().strip() if (run_dir / FAILED).exists() else "unknown reason"
    print(f"samlens run: run failed: {reason} ({run_dir})")
    return 1
