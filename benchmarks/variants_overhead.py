"""Step time of each SAM variant relative to SGD, measured side by side in one run.

For each model, one step of every variant (a LookSAM period of k steps, reported per step) runs in
turn, round-robin, on the same batch, so machine noise hits all of them alike; the median of each is
reported with its ratio to SGD. LookSAM's target is (k + 1)/k forward/backward passes per step.

    python benchmarks/variants_overhead.py [--repeats 10] [--threads 1] [--batch 64]
        [--models small_cnn,resnet18]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch.nn import functional as F

from samlens.models import get_model
from samlens.optim import build_optimizer

CASES = {
    "small_cnn": ("small_cnn (w32, BatchNorm, 32x32)", "small_cnn", {}),
    "resnet18": ("cifar_resnet18 (w16, 32x32)", "cifar_resnet18", {"width": 16}),
}
LOOKSAM_K = 5
# name -> (registered optimizer, options, steps per timed block)
VARIANTS = {
    "sgd": ("sgd", {}, 1),
    "sam": ("sam", {}, 1),
    "gsam": ("gsam", {"alpha": 0.4}, 1),
    "wsam": ("wsam", {"gamma": 0.9}, 1),
    "looksam": ("looksam", {"k": LOOKSAM_K, "alpha": 0.7}, LOOKSAM_K),
    "fsam": ("fsam", {}, 1),
    "random_sam": ("random_sam", {}, 1),
    "sam_on": ("sam_on", {}, 1),
}
_BASE = {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4}


def bench(kind, options, batch, repeats, warmup=2):
    torch.manual_seed(0)
    shape = (3, 32, 32)
    x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
    runs = {}
    for name, (registered, extra, _) in VARIANTS.items():
        model = get_model(kind, num_classes=10, input_shape=shape, **options)
        rho = {} if registered == "sgd" else {"rho": 0.05}
        runs[name] = (model, build_optimizer(registered, model, **_BASE, **rho, **extra))

    def step(name):
        model, opt = runs[name]

        def closure():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss

        if name == "sgd":
            closure()
            opt.step()
        else:
            opt.step(closure)

    times = {name: [] for name in VARIANTS}
    for _ in range(warmup):
        for name in VARIANTS:
            step(name)
    for _ in range(repeats):
        for name, (_, _, block) in VARIANTS.items():
            t0 = time.perf_counter()
            for _ in range(block):
                step(name)
            times[name].append((time.perf_counter() - t0) / block)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--models", default=",".join(CASES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = platform.processor() or platform.machine()
    print(f"# cpu ({cpu}), torch {torch.__version__}, {args.threads} thread(s)")
    print(f"# batch {args.batch}, repeats {args.repeats}, medians of interleaved steps, wall clock")
    print("| model | SGD ms | " + " | ".join(f"{n}/SGD" for n in VARIANTS if n != "sgd") + " |")
    print("|---|---:|" + "---:|" * (len(VARIANTS) - 1))
    for key in [m for m in args.models.split(",") if m]:
        label, kind, options = CASES[key]
        med = bench(kind, options, args.batch, args.repeats)
        ratios = " | ".join(f"{med[n] / med['sgd']:.2f}" for n in VARIANTS if n != "sgd")
        print(f"| {label} | {med['sgd'] * 1e3:.1f} | {ratios} |", flush=True)


if __name__ == "__main__":
    main()
