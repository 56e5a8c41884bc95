"""Probe engines side by side: scikit-learn reference vs batched torch, same data, one run.

Workloads (2,048-d features × 5,000 examples by default):
  probe  the spec §5 probe of one attribute: 5-fold CV over 6 C values + refits (36 fits)
  dfr    spec §6 DFR with 5,000 validation examples: 7 tuning fits + 20 balanced fits; the
         sklearn engine is the official recipe (liblinear, penalty L1), test worst-group
         accuracy is printed beside the time
  dfr_mild  the same recipe on the probe workload's features (spurious direction weaker than
         the core one, 70% agreement in every split, 2,000 test examples)

Features imitate a ReLU penultimate layer: a 64-d latent (holding the two attributes)
mapped to 2,048 correlated non-negative units plus noise. For DFR the label (core) direction
is weaker than the spurious one, and the groups are unequal: the spurious attribute agrees
with the label in 95% of training, 80% of validation and 50% of test examples.

    OMP_NUM_THREADS=1 python benchmarks/probe_engine.py [--n 5000] [--dim 2048] [--repeats 1]
        [--threads 1] [--workloads probe dfr dfr_mild]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from samlens.probe import Features, dfr
from samlens.probe.fit import cv_logistic_probe


def make(n: int, dim: int, seed: int) -> Features:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n)
    b = np.where(rng.random(n) < 0.7, a, 1 - a)
    z = rng.normal(size=(n, 64))
    z[:, 0] += 1.0 * (2 * a - 1)
    z[:, 1] += 0.6 * (2 * b - 1)
    mix = np.random.default_rng(99).normal(size=(64, dim)) / 8.0
    x = np.maximum(z @ mix + 0.5 * rng.normal(size=(n, dim)), 0.0)
    return Features(x.astype(np.float32), a, b, 2 * a + b)


def make_dfr(n: int, dim: int, seed: int, agree: float) -> Features:
    """Waterbirds-like embeddings: a weak core (label) and a strong spurious latent direction."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n)
    b = np.where(rng.random(n) < agree, a, 1 - a)
    z = rng.normal(size=(n, 64))
    z[:, 0] += 0.8 * (2 * a - 1)
    z[:, 1] += 1.5 * (2 * b - 1)
    mix = np.random.default_rng(98).normal(size=(64, dim)) / 8.0
    x = np.maximum(z @ mix + 0.5 * rng.normal(size=(n, dim)), 0.0)
    return Features(x.astype(np.float32), a, b, 2 * a + b)


def run_probe(engine: str, train: Features, test: Features) -> tuple[float, str]:
    fit = cv_logistic_probe(train.features, train.labels, test.features, engine=engine, seed=0)
    return float(np.mean(fit.test_pred == test.labels)), f"C={fit.C:g}"


def run_dfr(engine: str, train: Features, val: Features, test: Features) -> tuple[float, str]:
    r = dfr(train, val, test, engine=engine, seed=0)
    nnz = int(np.count_nonzero(r["coef"]))
    return r["worst_group_acc"], f"C={r['best_C']:g} mean={r['mean_acc']:.4f} nonzero={nnz}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workloads", nargs="+", default=["probe", "dfr"], choices=["probe", "dfr", "dfr_mild"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train, test = make(args.n, args.dim, 1), make(2000, args.dim, 2)
    dfr_data = [make_dfr(args.n, args.dim, s, agree) for s, agree in ((4, 0.95), (5, 0.8), (6, 0.5))]
    jobs = {
        "probe": lambda e: run_probe(e, train, test),
        "dfr": lambda e: run_dfr(e, *dfr_data),
        "dfr_mild": lambda e: run_dfr(e, train, make(args.n, args.dim, 3), test),
    }
    omp = os.environ.get("OMP_NUM_THREADS", "unset")
    print(
        f"n={args.n} dim={args.dim} torch threads={args.threads} OMP_NUM_THREADS={omp} "
        f"repeats={args.repeats} (median time)"
    )
    print("accuracy: test accuracy (probe), test worst-group accuracy (dfr)")
    # CPU seconds beside wall seconds: on a shared machine the wall time mostly measures the
    # other jobs, while process CPU time (one thread) follows the work done.
    print(f"{'workload':8} {'engine':8} {'wall s':>8} {'CPU s':>8} {'accuracy':>9}  detail")
    engines = ("sklearn", "torch")
    for name in args.workloads:
        # Engines alternate within each repeat, so a change in machine load hits both alike.
        wall: dict[str, list[float]] = {e: [] for e in engines}
        cpu: dict[str, list[float]] = {e: [] for e in engines}
        results: dict[str, tuple[float, str]] = {}
        for _ in range(args.repeats):
            for engine in engines:
                t0, c0 = time.perf_counter(), time.process_time()
                results[engine] = jobs[name](engine)
                wall[engine].append(time.perf_counter() - t0)
                cpu[engine].append(time.process_time() - c0)
        med_wall = {e: statistics.median(wall[e]) for e in engines}
        med_cpu = {e: statistics.median(cpu[e]) for e in engines}
        for engine in engines:
            acc, detail = results[engine]
            times = f"{med_wall[engine]:8.2f} {med_cpu[engine]:8.2f}"
            print(f"{name:8} {engine:8} {times} {acc:9.4f}  {detail}", flush=True)
        ratios = ", ".join(f"{a / b:.1f}x" for a, b in zip(wall["sklearn"], wall["torch"]))
        gap = 100 * (results["torch"][0] - results["sklearn"][0])
        print(
            f"{name:8} speed-up torch vs sklearn: wall {med_wall['sklearn'] / med_wall['torch']:.1f}x"
            f" (per repeat: {ratios}), CPU {med_cpu['sklearn'] / med_cpu['torch']:.1f}x;"
            f" accuracy torch - sklearn: {gap:+.2f} pt",
            flush=True,
        )


if __name__ == "__main__":
    main()
