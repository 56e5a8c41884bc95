"""``samlens demo``: how much SAM raises the hard feature's probe accuracy, with a paired interval.

For each seed it trains the demo config (``demo.yaml``, shipped in this package) with SGD and with
SAM at each radius of :data:`RHOS` — the same derived seed, so the same initialisation and data
order — and measures two references with the same architecture and probe: the untrained network
(floor) and SGD trained with the easy block shuffled across training examples (ceiling: only the
hard feature predicts the label). All runs go to a pool of processes, one torch thread each, on
every core. It prints, per optimizer, the hard feature's probe accuracy (mean ± SE over seeds),
the paired difference from SGD (mean ± SE of the per-seed differences), how many seeds are
positive and the fraction of the floor–ceiling range, then one sentence decided by the paired
interval at :data:`HEADLINE_RHO`: supports (Δ − 2 SE > 0), contradicts (Δ + 2 SE < 0) or
inconclusive. The report (``samlens.report``) draws the ρ curve and the probe-over-epochs curves.
"""

from __future__ import annotations

import argparse
import math
import sys
from importlib import resources
from pathlib import Path
from typing import Any

COMMAND = "demo"
HELP = "SGD vs SAM at two radii over paired seeds, between an untrained floor and a hard-only ceiling."

#: SAM radii of the demo: inside the window where the 10-epoch search saw the effect (0.3-0.7).
RHOS = (0.2, 0.5)
#: The radius whose paired interval decides the printed sentence (fixed before any run).
HEADLINE_RHO = 0.5
DEFAULT_SEEDS = 3
#: ``--full``: the whole sweep of configs/paper/mnist_fashion4_dominoes.yaml at its recipe.
FULL_RHOS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
FULL = {"seeds": 5, "train.epochs": 10, "data.options.train_per_class": 2000}
#: Radii at which training fails on this recipe (the caveat of every sentence).
CAVEAT = (
    "the effect lives in a ρ window (about 0.3-0.7 in the 10-epoch search): small radii leave SGD's "
    "features unchanged and ρ 1.0 stops training"
)
SUPPORTS, CONTRADICTS, INCONCLUSIVE = "supports", "contradicts", "inconclusive"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="samlens-demo", help="output directory (default: samlens-demo)")
    parser.add_argument("--seed", type=int, default=0, help="first train.seed (seeds SEED .. SEED+N-1)")
    parser.add_argument("--seeds", type=int, default=None, help=f"paired seeds (default {DEFAULT_SEEDS})")
    parser.add_argument(
        "--rho", default=None, help=f"SAM radii, comma-separated (default {','.join(map(str, RHOS))})"
    )
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default from demo.yaml)")
    parser.add_argument(
        "--full",
        action="store_true",
        help="5 seeds, ρ 0.02-1.0, 10 epochs of 2,000 images per class (about 2 CPU-hours)",
    )
    parser.add_argument("--workers", type=int, default=None, help="parallel runs (default: the cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress output while training")


def demo_configs(
    seed: int = 0,
    rhos: tuple[float, ...] = RHOS,
    epochs: int | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``{"sgd": cfg, "sam_rho0.5": cfg, ..., "ceiling": cfg}``: the SAM configs differ from SGD's
    only in the optimizer and radius; the ceiling is the SGD config on hard-only data. The floor is
    the SGD config, untrained."""
    from samlens.reproduce.headroom import ceiling_config
    from samlens.train.config import load_config

    overrides: dict[str, Any] = {"train.seed": seed, **(extra or {})}
    if epochs is not None:
        overrides["train.epochs"] = epochs
    with resources.as_file(resources.files("samlens.cli") / "demo.yaml") as path:
        cfgs = {"sgd": load_config(path, {**overrides, "optim.name": "sgd", "name": "demo-sgd"})}
        for rho in rhos:
            name = f"sam_rho{rho:g}"
            cfgs[name] = load_config(
                path, {**overrides, "optim.name": "sam", "optim.rho": rho, "name": f"demo-{name}"}
            )
    cfgs["ceiling"] = ceiling_config(cfgs["sgd"])
    return cfgs


def run_task(config: dict[str, Any], run_dir: str, threads: int | None, imports: tuple[str, ...]) -> str:
    """The pool's worker: a ``floor`` directory is probed untrained, everything else trained."""
    import torch

    from samlens.reproduce.headroom import write_floor
    from samlens.rundir import run_status
    from samlens.train.config import config_from_dict
    from samlens.train.runner import run_experiment

    if threads:
        torch.set_num_threads(threads)
    cfg = config_from_dict(config)
    if Path(run_dir).name == "floor":
        write_floor(cfg, Path(run_dir))
        return "done"
    # Named by role, not by config hash (so the sweep's run_point does not apply).
    return run_status(run_experiment(cfg, Path(run_dir), quiet=True))


def decide(delta: float, se: float) -> str:
    """supports when Δ − 2SE > 0, contradicts when Δ + 2SE < 0, else (or without an SE) inconclusive."""
    if math.isnan(se) or math.isnan(delta):
        return INCONCLUSIVE
    if delta - 2 * se > 0:
        return SUPPORTS
    if delta + 2 * se < 0:
        return CONTRADICTS
    return INCONCLUSIVE


def summarize(setting: Any, headline: float = HEADLINE_RHO) -> tuple[str, str, str]:
    """The printed table, the status and the one sentence, from a ``samlens.report.paired.Setting``."""
    header = "| run | hard probe (mean ± SE) | Δ vs SGD (paired ± SE) | Δ > 0 | fraction of range | fit |"
    lines = [header, "|---|---:|---:|---:|---:|---:|"]
    for r in setting.rows:
        delta = "–" if r.delta is None or not r.delta.delta.n else _signed(r.delta.delta)
        positive = "–" if r.delta is None else f"{r.delta.positive}/{r.delta.delta.n}"
        fraction = "n/a" if r.fraction != r.fraction else f"{100 * r.fraction:.0f}%"
        fit = f"{r.runs - len(r.failed)}/{r.runs}"
        lines.append(f"| {r.label} | {r.hard} | {delta} | {positive} | {fraction} | {fit} |")
    head = next((r for r in setting.rows if r.kind == "treatment" and r.rho == headline), None)
    sgd = setting.row("baseline")
    if head is None or head.delta is None or not head.delta.delta.n or sgd is None:
        return (
            "\n".join(lines),
            INCONCLUSIVE,
            f"No fitted SAM ρ={headline:g} run to compare with SGD; {CAVEAT}.",
        )
    d = head.delta.delta
    status = decide(d.mean, d.se)
    verb = {
        SUPPORTS: "supports the claim that SAM raises",
        CONTRADICTS: "contradicts the claim that SAM raises; SAM lowers",
        INCONCLUSIVE: "is inconclusive on whether SAM raises",
    }[status]
    interval = (
        "no SE from one seed"
        if math.isnan(d.se)
        else f"Δ ± 2SE = [{d.mean - 2 * d.se:+.3f}, {d.mean + 2 * d.se:+.3f}]"
    )
    sentence = (
        f"At ρ={headline:g} the paired difference from SGD, {_signed(d)} ({head.delta.positive}/{d.n} seeds "
        f"positive; {interval}; {_pct(sgd.fraction)} → {_pct(head.fraction)} of the floor→ceiling range), "
        f"{verb} the hard feature's probe accuracy here, and only there: {CAVEAT}."
    )
    return "\n".join(lines), status, sentence


def _signed(s: Any) -> str:
    return f"{s.mean:+.3f}" if math.isnan(s.se) else f"{s.mean:+.3f} ± {s.se:.3f}"


def _pct(fraction: float) -> str:
    return "n/a" if fraction != fraction else f"{100 * fraction:.0f}%"


def plan(args: argparse.Namespace) -> tuple[list[tuple[dict[str, Any], Path]], Path]:
    """Every run of the demo as ``(config dict, run dir)``, longest first (SAM, then SGD, floors)."""
    from samlens.errors import ConfigError
    from samlens.train.config import config_to_dict
    from samlens.validate import check_int, check_rho

    seeds = args.seeds if args.seeds is not None else (FULL["seeds"] if args.full else DEFAULT_SEEDS)
    check_int("--seeds", seeds, low=1)
    if args.epochs is not None:
        check_int("--epochs", args.epochs, low=1)
    rhos = FULL_RHOS if args.full else RHOS
    if args.rho is not None:
        try:
            rhos = tuple(float(v) for v in str(args.rho).split(",") if v.strip())
        except ValueError:
            raise ConfigError(f"--rho must be comma-separated numbers, got {args.rho!r}") from None
    rhos = tuple(check_rho(r, "--rho") for r in rhos)
    extra = {k: v for k, v in FULL.items() if k != "seeds"} if args.full else {}
    runs = Path(args.out) / "runs"
    todo: list[tuple[int, dict[str, Any], Path]] = []
    for seed in range(args.seed, args.seed + seeds):
        cfgs = demo_configs(seed, rhos, args.epochs, extra)
        for name, cfg in cfgs.items():
            todo.append(
                (0 if name.startswith("sam") else 1, config_to_dict(cfg), runs / f"seed{seed}" / name)
            )
        todo.append((2, config_to_dict(cfgs["sgd"]), runs / f"seed{seed}" / "floor"))
    todo.sort(key=lambda item: item[0])
    return [(cfg, d) for _, cfg, d in todo], runs


def run(args: argparse.Namespace) -> int:
    from samlens.errors import ConfigError
    from samlens.report import write_report
    from samlens.report.load import load_runs
    from samlens.report.paired import analyse
    from samlens.train import launchers
    from samlens.train.distributed import available_cores
    from samlens.validate import check_int

    todo, runs = plan(args)
    workers = args.workers if args.workers is not None else available_cores()
    check_int("--workers", workers, low=1)
    tasks = [launchers.Task(cfg, str(d), ()) for cfg, d in todo]

    def progress(outcome: Any) -> None:
        if not args.quiet:
            where = Path(outcome.run_dir)
            print(f"  {where.parent.name} {where.name}: {outcome.state}", file=sys.stderr, flush=True)

    outcomes = launchers.launch("local", tasks, workers=workers, run_fn=run_task, report=progress)
    failed = [o for o in outcomes if o.state != "done"]
    if failed:
        raise ConfigError(
            f"{len(failed)} demo run(s) did not finish, e.g. {failed[0].run_dir}; see train.log"
        )
    _, loaded = load_runs(runs)
    settings = analyse(loaded)
    if len(settings) != 1:
        raise ConfigError(f"expected one demo setting under {runs}, found {len(settings)}")
    table, status, sentence = summarize(settings[0])
    report = write_report(runs, Path(args.out) / "report")
    print(table)
    print(f"\n{status}: {sentence}")
    print(f"\nruns: {runs}   report: {report}")
    return 0
