"""``samlens toy``: the two-feature toy study (SGD, SAM, LSAM, IW-only, LR-only over seeds)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from samlens.train.toy import (
    TOY_MODELS,
    TOY_OPTIMIZERS,
    ToyConfig,
    toy_config_from_options,
)

COMMAND = "toy"
HELP = "Run the toy study of SAM's balancing mechanism and write results.jsonl, a summary and figures."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = ToyConfig()
    parser.add_argument("--out", default="toy_out", help="output directory (default: %(default)s)")
    parser.add_argument(
        "--seeds", type=int, default=len(d.seeds), help="number of seeds (default: %(default)s)"
    )
    parser.add_argument("--steps", type=int, default=d.steps, help="training steps (default: %(default)s)")
    parser.add_argument("--model", choices=TOY_MODELS, default=d.model)
    parser.add_argument("--width", type=int, default=d.width, help="hidden width of the two-layer nets")
    parser.add_argument("--init-scale", type=float, default=d.init_scale)
    parser.add_argument(
        "--optimizers",
        default=",".join(d.optimizers),
        help="comma-separated subset of " + ", ".join(TOY_OPTIMIZERS),
    )
    parser.add_argument(
        "--rho", type=float, default=d.rho, help="LSAM/IW/LR head radius (default: %(default)s)"
    )
    parser.add_argument(
        "--sam-rho", type=float, default=d.sam_rho, help="full SAM radius (default: %(default)s)"
    )
    parser.add_argument("--rho-mode", choices=("absolute", "relative"), default=d.rho_mode)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--n-train", type=int, default=d.n_train)
    parser.add_argument("--eval-every", type=int, default=d.eval_every)
    parser.add_argument(
        "--q", type=float, default=d.data.q, help="fraction of examples without the easy feature"
    )
    parser.add_argument("--easy-spread", type=float, default=d.data.easy_spread)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads; tiny models run fastest on one (default: %(default)s)",
    )
    parser.add_argument("--no-figures", action="store_true")


#: Command-line options that are ToyConfig options (``toy_config_from_options`` names).
CONFIG_OPTIONS = ("seeds", "steps", "model", "width", "init_scale", "optimizers", "rho", "sam_rho",
                  "rho_mode", "lr", "batch_size", "n_train", "eval_every", "q", "easy_spread")  # fmt: skip


def config_from_args(args: argparse.Namespace) -> ToyConfig:
    """The ToyConfig the command line describes."""
    return toy_config_from_options({key: getattr(args, key) for key in CONFIG_OPTIONS})


def run(args: argparse.Namespace) -> int:
    from samlens.reproduce.toy import write_toy_study

    cfg = config_from_args(args)
    torch.set_num_threads(max(1, args.threads))
    out = Path(args.out)
    table = write_toy_study(cfg, out, figures=not args.no_figures)
    print(table)
    print(
        f"wrote {out}/results.jsonl, summary.json, summary.txt"
        + ("" if args.no_figures else " and figures (PNG + PDF)")
    )
    return 0
