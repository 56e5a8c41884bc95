"""``samlens probe RUN_DIR --method balanced|dfr|transfer``: probe a trained run's features.

The run's checkpoint is loaded, its frozen features are probed with ``samlens.probe``,
a ``probe`` event is appended to ``results.jsonl`` and the numbers are printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

COMMAND = "probe"
HELP = "Probe the frozen features of a trained run (balanced per-feature probe, DFR or transfer)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from samlens.train.config import PROBE_METHODS

    parser.add_argument("run_dir", help="a run directory written by samlens run")
    parser.add_argument(
        "--method", choices=PROBE_METHODS, default="balanced", help="probe (default: balanced)"
    )
    parser.add_argument(
        "--engine",
        choices=("torch", "sklearn"),
        default=None,
        help="default: the run's probe.engine for balanced/transfer, DFR's own fast engine for dfr",
    )


def format_table(metrics: dict[str, float]) -> str:
    width = max((len(k) for k in metrics), default=6)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  ------"]
    lines += [f"{key:<{width}}  {value:.4f}" for key, value in metrics.items()]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from samlens.errors import ConfigError
    from samlens.rundir import CONFIG, DONE, append_result, is_done, load_checkpoint
    from samlens.train.build import load_run
    from samlens.train.events import probe_record
    from samlens.train.probing import run_probe

    run_dir = Path(args.run_dir)
    if (run_dir / CONFIG).exists() and not is_done(run_dir):
        # Its checkpoint may be mid-training or mid-write, and the probe event would land
        # among the run's own events.
        raise ConfigError(
            f"run {str(run_dir)!r} is not done (no {DONE!r} marker); finish it with samlens run first"
        )
    cfg, model, dataset = load_run(run_dir)
    # The run's probe.engine is for the balanced probe; DFR has its own default engine.
    from samlens.probe.dfr import DFR_ENGINE

    engine = args.engine or (DFR_ENGINE if args.method == "dfr" else cfg.probe.engine)
    metrics = run_probe(args.method, model, dataset, engine=engine)
    ckpt = load_checkpoint(run_dir) or {}
    record = probe_record(cfg, ckpt.get("step", 0), ckpt.get("epoch", 0), metrics)
    record["method"] = args.method
    append_result(run_dir, record)
    print(format_table(metrics))
    return 0
