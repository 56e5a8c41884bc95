"""SAM's cost relative to its base optimizer, measured side by side.

For each model, SGD, SAM and periodic SAM (k = 2, 5) steps are interleaved round-robin (so
machine noise hits all of them alike) and the median step time of each is reported with its
ratio to SGD. Extra memory: the state SAM keeps between passes, relative to the parameters
(and, on CUDA, the measured peak-memory difference of one step).

    python benchmarks/sam_overhead.py [--repeats 30] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch.nn import functional as F

from samlens.models import get_model
from samlens.optim import SAM

CASES = {
    "cifar_resnet18 (w16, b128, 32x32)": ("cifar_resnet18", {"width": 16}, (3, 32, 32), 128),
    # The MLP on the ResNet's input size (where a step does real work), and a tiny one (8x8 inputs,
    # a 2 ms step) where SAM's fixed per-step costs are most visible.
    "mlp (3x32x32 -> 512 -> 512, b128)": ("mlp", {"hidden": [512, 512]}, (3, 32, 32), 128),
    "mlp (1x8x8 -> 256 -> 256, b128)": ("mlp", {}, (1, 8, 8), 128),
}
VARIANTS = {"sgd": None, "sam": 1, "sam_k2": 2, "sam_k5": 5}


def _optimizer(model, interval):
    base = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    return base if interval is None else SAM(base, rho=0.05, model=model, interval=interval)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_case(name, kind, options, shape, batch, device, repeats, warmup=3):
    torch.manual_seed(0)
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    runs = {}
    for variant, interval in VARIANTS.items():
        model = get_model(kind, num_classes=10, input_shape=shape, **options).to(device)
        runs[variant] = (model, _optimizer(model, interval))

    def one_step(variant):
        model, opt = runs[variant]

        def closure():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss

        opt.step(closure)

    times = {v: [] for v in VARIANTS}
    for _ in range(warmup):
        for v in VARIANTS:
            one_step(v)
    for _ in range(repeats):
        for v, interval in VARIANTS.items():
            # A periodic variant is timed over one whole period (1 SAM step + k-1 single-pass
            # steps) and reported per step, so its median is the amortised cost.
            block = interval or 1
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(block):
                one_step(v)
            _sync(device)
            times[v].append((time.perf_counter() - t0) / block)
    med = {v: statistics.median(ts) for v, ts in times.items()}

    model, opt = runs["sam"]
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    state_bytes = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values())
    peak_ratio = None
    if device.type == "cuda":
        peaks = {}
        for v in ("sgd", "sam"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            one_step(v)
            _sync(device)
            peaks[v] = torch.cuda.max_memory_allocated(device)
        # Both models are resident during each measurement; the difference is SAM's extra.
        peak_ratio = (peaks["sam"] - peaks["sgd"]) / param_bytes
    return name, med, state_bytes / param_bytes, peak_ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    threads = torch.get_num_threads()
    print(f"# device: {device.type} ({dev_name}), torch {torch.__version__}, threads {threads}")
    print(f"# repeats {args.repeats}, medians of interleaved steps")
    print(
        "| model | SGD ms | SAM ms | SAM/SGD | k=2 /SGD | k=5 /SGD | SAM state/params | peak extra/params |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, (kind, options, shape, batch) in CASES.items():
        _, med, state_ratio, peak_ratio = bench_case(name, kind, options, shape, batch, device, args.repeats)
        sgd = med["sgd"]
        peak = "n/a (CPU)" if peak_ratio is None else f"{peak_ratio:.2f}x"
        print(
            f"| {name} | {sgd * 1e3:.2f} | {med['sam'] * 1e3:.2f} | {med['sam'] / sgd:.3f} | "
            f"{med['sam_k2'] / sgd:.2f} | {med['sam_k5'] / sgd:.2f} | {state_ratio:.2f}x | {peak} |"
        )


if __name__ == "__main__":
    main()
