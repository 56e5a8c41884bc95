"""How much the balanced probe moves with its own seed on fixed features, and what steadies it.

Loads the final checkpoints of trained runs (e.g. one SGD and one SAM run of ``samlens demo``),
extracts their probe-split features once, and runs ``samlens.probe.balanced_probe`` with probe
seeds 0..N-1 under four variants:

* ``default``: the probe as every run uses it (the seed draws the balanced subsample and the CV folds);
* ``folds only``: the subsample fixed (seed 0), only the CV folds redrawn: the C-choice share;
* ``cv x5``: ``cv_repeats=5``, C chosen on the mean of 5 fold splits;
* ``C fixed``: C fixed to the value the SGD run's features pick most often under ``default``.

Prints the std over probe seeds of the hard- (label) and easy-feature (other) probe accuracy.
Usage: ``PYTHONPATH=src python scripts/probe_noise.py RUN_DIR [RUN_DIR ...] [--seeds 10]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from pathlib import Path

import torch

from samlens.probe import extract_features
from samlens.probe.balanced import TARGETS, balanced_probe, balanced_subsets
from samlens.probe.fit import cv_logistic_probe
from samlens.probe.metrics import mean_accuracy
from samlens.train.build import load_run, read_config
from samlens.train.probing import probe_splits


def features(run_dir: Path) -> tuple:
    _, model, dataset = load_run(run_dir)
    train, test = probe_splits(dataset)
    return extract_features(model, dataset.split(train)), extract_features(model, dataset.split(test))


def fixed_c(train, test, seed: int, Cs: dict[str, float]) -> dict[str, float]:
    btr, bte = balanced_subsets(train, test, seed)
    out = {}
    for t in TARGETS:
        fit = cv_logistic_probe(
            btr.features, btr.target(t), bte.features, engine="torch", seed=seed, Cs=(Cs[t],)
        )
        out[f"probe_acc_{t}"] = mean_accuracy(bte.target(t), fit.test_pred)
    return out


def folds_only(train, test, seed: int) -> dict[str, float]:
    btr, bte = balanced_subsets(train, test, 0)
    out = {}
    for t in TARGETS:
        fit = cv_logistic_probe(btr.features, btr.target(t), bte.features, engine="torch", seed=seed)
        out[f"probe_acc_{t}"] = mean_accuracy(bte.target(t), fit.test_pred)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run directories (first: the SGD run)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument(
        "--fixed-c",
        type=float,
        default=None,
        help="only re-probe each run (probe seed 0) with C fixed to this value for both features",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.fixed_c is not None:
        print("| run | optimizer | rho | seed | hard, C by CV | hard, C fixed |")
        print("|---|---|---|---|---:|---:|")
        for run_dir in args.runs:
            cfg = read_config(run_dir)
            train, test = features(run_dir)
            cv = balanced_probe(train, test, seed=0)["probe_acc_label"]
            fixed = fixed_c(train, test, 0, {t: args.fixed_c for t in TARGETS})["probe_acc_label"]
            print(
                f"| {run_dir.name} | {cfg.optim.name} | {cfg.optim.rho:g} | {cfg.train.seed} | "
                f"{cv:.4f} | {fixed:.4f} |",
                flush=True,
            )
        return 0
    seeds = range(args.seeds)
    print("| run | variant | std hard (label) | std easy (other) | mean hard | C chosen (hard) |")
    print("|---|---|---:|---:|---:|---|")
    Cs: dict[str, float] = {}
    for i, run_dir in enumerate(args.runs):
        train, test = features(run_dir)
        default = [balanced_probe(train, test, seed=s) for s in seeds]
        if i == 0:  # C fixed once, on the first (SGD) run's features, for every run
            Cs = {t: Counter(r[f"C_{t}"] for r in default).most_common(1)[0][0] for t in TARGETS}
        variants = {
            "default": default,
            "folds only": [folds_only(train, test, s) for s in seeds],
            "cv x5": [balanced_probe(train, test, seed=s, cv_repeats=5) for s in seeds],
            f"C fixed ({Cs['label']:g}, {Cs['other']:g})": [fixed_c(train, test, s, Cs) for s in seeds],
        }
        for name, results in variants.items():
            hard = [r["probe_acc_label"] for r in results]
            easy = [r["probe_acc_other"] for r in results]
            chosen = Counter(r.get("C_label") for r in results if "C_label" in r)
            print(
                f"| {run_dir.parent.name}/{run_dir.name} | {name} | {statistics.stdev(hard):.4f} | "
                f"{statistics.stdev(easy):.4f} | {statistics.mean(hard):.4f} | "
                f"{', '.join(f'{c:g}x{n}' for c, n in sorted(chosen.items())) or '-'} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
