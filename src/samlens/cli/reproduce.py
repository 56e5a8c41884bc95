"""``samlens reproduce NAME``: run one of the paper's experiments (or a stand-in) and report it."""

from __future__ import annotations

import argparse
from pathlib import Path

from samlens.cli.launch_options import add_launcher_arguments

COMMAND = "reproduce"
HELP = "Run a paper experiment or its offline stand-in (configs/paper) and write its report."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="reproduction name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the reproductions and exit")
    parser.add_argument("--data-dir", help="dataset folder (real datasets only)")
    parser.add_argument("--out", help="output directory (default: runs/reproduce/NAME[_quick])")
    parser.add_argument("--quick", action="store_true", help="a reduced grid for CI (2 seeds, tiny runs)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="runs at the same time, one torch thread each (default: the number of cores)",
    )
    add_launcher_arguments(parser)


def list_table() -> str:
    """One line per reproduction: name, whether it needs --data-dir, and its claim."""
    from samlens.reproduce import REPRODUCTIONS

    width = max(len(n) for n in REPRODUCTIONS)
    lines = []
    for name, r in REPRODUCTIONS.items():
        where = "needs --data-dir" if r.needs_data else "offline"
        lines.append(f"{name.ljust(width)}  {where.ljust(16)}  {r.claim}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from samlens.errors import ConfigError

    if args.list:
        print(list_table())
        return 0
    if not args.name:
        raise ConfigError("give a reproduction NAME or --list")
    from samlens.cli.launch_options import launcher_options
    from samlens.reproduce import reproduce
    from samlens.reproduce.run import default_out

    options = launcher_options(
        args, default_out(args.name, args.quick) if args.out is None else Path(args.out)
    )
    if args.workers is None:
        from samlens.train.distributed import available_cores

        args.workers = available_cores()
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    result = reproduce(
        args.name,
        data_dir=args.data_dir,
        out=args.out,
        quick=args.quick,
        launcher=args.launcher,
        workers=args.workers,
        launcher_options=options,
    )
    # Like `samlens sweep launch`: a non-zero status when any run did not finish.
    return 0 if result.report is not None and result.unfinished == 0 else 1
