"""``samlens demo``: SGD vs SAM on real digits, probed per feature, in a few minutes on a laptop.

Trains the same config twice on ``mnist5k_dominoes`` (pip-only data), once with SGD and
once with SAM; both runs share ``train.seed`` and therefore data order and initialisation.
Then probes each run's frozen features for both attributes and prints the comparison.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

COMMAND = "demo"
HELP = "Train SGD and SAM on real digits (pip-only data), probe both features, print and report."

DEMO_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "demo.yaml"
DEFAULTS: dict[str, Any] = {
    "name": "demo",
    "data.name": "mnist5k_dominoes",
    "data.batch_size": 32,
    "model.name": "small_cnn",
    "model.options": {"width": 16},
    "optim.lr": 0.05,
    "optim.rho": 0.1,
    "train.epochs": 6,
    "train.eval_every": 3,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="samlens-demo", help="output directory (default: samlens-demo)")
    parser.add_argument("--seed", type=int, default=0, help="train.seed shared by both runs")
    parser.add_argument("--rho", type=float, default=None, help="SAM radius (default from the demo config)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default 6)")
    parser.add_argument("--quiet", action="store_true", help="no progress output while training")


def demo_configs(seed: int = 0, rho: float | None = None, epochs: int | None = None) -> dict[str, Any]:
    """``{"sgd": cfg, "sam": cfg}``: identical except for the optimizer."""
    from samlens.train.config import load_config

    overrides = dict(DEFAULTS, **{"train.seed": seed})
    if rho is not None:
        overrides["optim.rho"] = rho
    if epochs is not None:
        overrides["train.epochs"] = epochs
    path = DEMO_CONFIG if DEMO_CONFIG.is_file() else None
    return {
        name: load_config(path, dict(overrides, **{"optim.name": name, "name": f"demo-{name}"}))
        for name in ("sgd", "sam")
    }


def comparison_table(finals: dict[str, dict[str, float]]) -> str:
    """Markdown table: one row per metric, one column per optimizer."""
    rows = [
        ("probe accuracy, label feature (MNIST 4 vs 9)", "probe_acc_label"),
        ("probe accuracy, other feature (8x8 digit 0 vs 1)", "probe_acc_other"),
        ("in-distribution test accuracy", "test_acc"),
        ("final training loss", "train_loss"),
    ]
    names = list(finals)
    lines = ["| metric | " + " | ".join(n.upper() for n in names) + " |", "|---|" + "---:|" * len(names)]
    for label, key in rows:
        cells = [f"{finals[n][key]:.3f}" if key in finals[n] else "–" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from samlens.errors import ConfigError
    from samlens.train.rundir import read_results, run_status
    from samlens.train.runner import run_experiment

    out = Path(args.out)
    configs = demo_configs(args.seed, args.rho, args.epochs)
    finals: dict[str, dict[str, float]] = {}
    for name, cfg in configs.items():
        run_dir = run_experiment(cfg, out / "runs" / name, quiet=args.quiet)
        if run_status(run_dir) != "done":
            raise ConfigError(f"the {name} run did not finish ({run_dir}); see its train.log")
        events = [e for e in read_results(run_dir) if e["event"] == "final"]
        finals[name] = events[-1]["metrics"]
    table = comparison_table(finals)
    report = _write_report(out, table)
    print(table)
    print(f"\nruns: {out / 'runs'}   report: {report}")
    return 0


def _write_report(out: Path, table: str) -> Path:
    try:
        from samlens.report import write_report
    except ImportError:
        write_report = None
    if write_report is not None:
        return Path(write_report(out / "runs", out / "report"))
    from samlens.train.rundir import atomic_write_text

    path = out / "report.md"
    atomic_write_text(path, "# samlens demo: SGD vs SAM\n\n" + table + "\n")
    return path
