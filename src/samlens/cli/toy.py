"""``samlens toy``: the two-feature toy study (SGD, SAM, LSAM, IW-only, LR-only over seeds)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from samlens.rundir import atomic_write_text
from samlens.train.toy import (
    TOY_MODELS,
    TOY_OPTIMIZERS,
    ToyConfig,
    run_study,
    summarize,
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


def _fmt(pair: tuple[float, float], digits: int = 3) -> str:
    return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"


def format_summary(rows: list[dict[str, Any]]) -> str:
    """The summary table and one sentence per variant relative to SGD."""
    head = f"{'optimizer':9s} {'n':>2s} {'|b_hard|/|b_easy| end':>22s} {'ratio @ matched loss':>26s} "
    head += (
        f"{'train loss':>16s} {'Gini lam':>16s} {'Gini lam~':>16s} {'probe easy':>14s} {'probe hard':>14s}"
    )
    lines = [head]
    for r in rows:
        matched = (
            f"{_fmt(r['ratio_at_matched_loss'])} @{r['matched_loss']:g}" if "matched_loss" in r else "n/a"
        )
        lines.append(
            f"{r['optimizer']:9s} {r['n']:2d} {_fmt(r['ratio']):>22s} {matched:>26s} {_fmt(r['loss']):>16s} "
            f"{_fmt(r['gini_lambda']):>16s} {_fmt(r['gini_lambda_phantom']):>16s} "
            f"{_fmt(r['probe_easy']):>14s} {_fmt(r['probe_hard']):>14s}"
        )
    sgd = next((r for r in rows if r["optimizer"] == "sgd"), None)
    if sgd is not None:
        for r in rows:
            if r is sgd:
                continue
            words = []
            for key, label in (("ratio", "final ratio"), ("ratio_at_matched_loss", "ratio at matched loss")):
                if key in r and key in sgd and sgd[key][0] > 0:
                    words.append(f"{label} x{r[key][0] / sgd[key][0]:.2f} vs SGD")
            lines.append(f"{r['optimizer']}: " + "; ".join(words))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    torch.set_num_threads(max(1, args.threads))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = run_study(
        cfg,
        progress=lambda r: print(
            f"  {r['optimizer']:5s} seed {r['seed']}: ratio {r['final']['ratio']:.4f}", flush=True
        ),
    )
    rows = summarize(records)
    lines = [json.dumps({k: v for k, v in r.items()}) for r in records]
    atomic_write_text(out / "results.jsonl", "\n".join(lines) + "\n")
    atomic_write_text(
        out / "summary.json", json.dumps({"config": cfg.to_dict(), "summary": rows}, indent=2, default=str)
    )
    if not args.no_figures:
        from samlens.report.mechanism_plots import plot_toy

        plot_toy(records, out)
    table = format_summary(rows)
    atomic_write_text(out / "summary.txt", table + "\n")
    print(table)
    print(
        f"wrote {out}/results.jsonl, summary.json, summary.txt"
        + ("" if args.no_figures else " and figures (PNG + PDF)")
    )
    return 0
