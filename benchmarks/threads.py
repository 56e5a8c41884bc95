"""Torch intra-op threads for one training run: 1 vs 2 (vs more) on the demo-size step.

Builds the ``samlens demo`` model and data (small_cnn width 16 on mnist5k_dominoes, batch 32)
and times training steps of SGD and SAM with each thread count, interleaved round-robin so
machine noise hits every variant alike; prints the median wall-clock ms per step, its ratio to
1 thread, and the process CPU ms per step (all threads together: what the run costs a shared
machine). The single-run default (``samlens.train.distributed.SINGLE_RUN_THREADS``) is chosen from it.

    OMP_NUM_THREADS=1 python benchmarks/threads.py [--repeats 15] [--steps 10] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from torch.nn import functional as F

from samlens.cli.demo import demo_configs
from samlens.train import build
from samlens.train.distributed import available_cores


def _batches(cfg, dataset, steps):
    train = dataset.split("train", train=True)
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(train), generator=gen).tolist()
    size = cfg.data.batch_size
    out = []
    for b in range(steps):
        items = [train[i] for i in order[b * size : (b + 1) * size]]
        out.append((torch.stack([it[0] for it in items]), torch.tensor([it[1] for it in items])))
    return out


def _step(model, opt, x, y):
    def closure():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    return opt.step(closure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed blocks per variant")
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed block")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    args = parser.parse_args()
    counts = [int(t) for t in args.threads.split(",")]

    cfgs = demo_configs()
    dataset = build.build_dataset(cfgs["sgd"])
    batches = _batches(cfgs["sgd"], dataset, args.steps)
    runs = {}
    for name, cfg in cfgs.items():
        for n in counts:
            model = build.build_model(cfg, dataset)
            model.train()
            runs[(name, n)] = (model, build.build_optimizer(cfg, model))
    times: dict[tuple[str, int], list[float]] = {key: [] for key in runs}
    cpu: dict[tuple[str, int], list[float]] = {key: [] for key in runs}
    for repeat in range(args.repeats + 1):  # the first round warms up and is dropped
        for key, (model, opt) in runs.items():
            torch.set_num_threads(key[1])
            start, start_cpu = time.perf_counter(), time.process_time()
            for x, y in batches:
                _step(model, opt, x, y)
            if repeat:
                times[key].append((time.perf_counter() - start) / len(batches) * 1e3)
                cpu[key].append((time.process_time() - start_cpu) / len(batches) * 1e3)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"# {platform.processor() or platform.machine()}, {available_cores()} cores available, "
        f"load average {load:.1f}; torch {torch.__version__}; {args.repeats} x {args.steps} steps"
    )
    print("| optimizer | threads | wall ms/step (median) | min | ratio to 1 thread | CPU ms/step (median) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in cfgs:
        base = statistics.median(times[(name, counts[0])])
        for n in counts:
            med, key = statistics.median(times[(name, n)]), (name, n)
            print(
                f"| {name} | {n} | {med:.1f} | {min(times[key]):.1f} | {med / base:.2f} "
                f"| {statistics.median(cpu[key]):.1f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
