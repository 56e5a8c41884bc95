"""SAM's cost relative to its base optimizer, measured side by side.

For each model, SGD, SAM, periodic SAM (k = 2, 5) and last-layer SAM (``lsam``: the single-pass
default and the two-pass path) steps are interleaved round-robin (so machine noise hits all of
them alike) and the median step time of each is reported with its ratio to SGD. Extra memory: the
state SAM keeps between passes, relative to the parameters (and, on CUDA, the measured peak-memory
difference of one step). ``--threads 1,default`` repeats the whole table per thread count in one run.

    python benchmarks/sam_overhead.py [--repeats 30] [--device cpu|cuda] [--threads 1,default]
        [--models resnet18,mlp512,mlp_tiny] [--variants sgd,sam,lsam,...] [--clock wall|cpu]

``--clock cpu`` times steps by the process's CPU time instead of the wall clock: with one thread on
a CPU shared with other jobs it counts only this process's work, not the time it waited for a core.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from torch.nn import functional as F

from samlens.models import get_model
from samlens.optim import SAM, build_optimizer

CASES = {
    "resnet18": ("cifar_resnet18 (w16, b128, 32x32)", "cifar_resnet18", {"width": 16}, (3, 32, 32), 128),
    # The MLP on the ResNet's input size (where a step does real work), and a tiny one (8x8 inputs,
    # a 2 ms step) where SAM's fixed per-step costs are most visible.
    "mlp512": ("mlp (3x32x32 -> 512 -> 512, b128)", "mlp", {"hidden": [512, 512]}, (3, 32, 32), 128),
    "mlp_tiny": ("mlp (1x8x8 -> 256 -> 256, b128)", "mlp", {}, (1, 8, 8), 128),
}
# name -> steps per timed block (a periodic variant is timed over one whole period)
VARIANTS = {"sgd": 1, "sam": 1, "sam_k2": 2, "sam_k5": 5, "lsam": 1, "lsam_2pass": 1}
_SGD = {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4}


def _optimizer(model, variant):
    if variant == "sgd":
        return torch.optim.SGD(model.parameters(), **_SGD)
    if variant.startswith("lsam"):
        return build_optimizer("lsam", model, rho=0.05, single_pass=variant == "lsam", **_SGD)
    base = torch.optim.SGD(model.parameters(), **_SGD)
    return SAM(base, rho=0.05, model=model, interval=VARIANTS[variant])


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_case(kind, options, shape, batch, device, repeats, variants, clock=time.perf_counter, warmup=3):
    torch.manual_seed(0)
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    runs = {}
    for variant in variants:
        model = get_model(kind, num_classes=10, input_shape=shape, **options).to(device)
        runs[variant] = (model, _optimizer(model, variant))

    def one_step(variant):
        model, opt = runs[variant]

        def closure():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss

        opt.step(closure)

    times = {v: [] for v in variants}
    for _ in range(warmup):
        for v in variants:
            one_step(v)
    for _ in range(repeats):
        for v in variants:
            # A periodic variant is timed over one whole period (1 SAM step + k-1 single-pass
            # steps) and reported per step, so its median is the amortised cost.
            block = VARIANTS[v]
            _sync(device)
            t0 = clock()
            for _ in range(block):
                one_step(v)
            _sync(device)
            times[v].append((clock() - t0) / block)
    med = {v: statistics.median(ts) for v, ts in times.items()}
    if "sam" not in runs:
        return med, None, None

    model, opt = runs["sam"]
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    state_bytes = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values())
    peak_ratio = None
    if device.type == "cuda" and "sgd" in runs:
        peaks = {}
        for v in ("sgd", "sam"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            one_step(v)
            _sync(device)
            peaks[v] = torch.cuda.max_memory_allocated(device)
        # Both models are resident during each measurement; the difference is SAM's extra.
        peak_ratio = (peaks["sam"] - peaks["sgd"]) / param_bytes
    return med, state_bytes / param_bytes, peak_ratio


def _ratio(med, variant, digits=2):
    if variant not in med or "sgd" not in med:
        return "-"
    return f"{med[variant] / med['sgd']:.{digits}f}"


def _ms(med, variant):
    return f"{med[variant] * 1e3:.2f}" if variant in med else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--threads", default="default", help="comma-separated thread counts, 'default' = torch's own"
    )
    parser.add_argument("--models", default=",".join(CASES), help=f"subset of {', '.join(CASES)}")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"subset of {', '.join(VARIANTS)}")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args()
    if args.clock == "cpu" and (args.device != "cpu" or args.threads != "1"):
        parser.error("--clock cpu needs --device cpu and --threads 1 (it sums the CPU time of all threads)")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    models = [m for m in args.models.split(",") if m]
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted((set(models) - set(CASES)) | (set(variants) - set(VARIANTS)))
    if unknown:
        parser.error(f"unknown model(s)/variant(s): {', '.join(unknown)}")
    default_threads = torch.get_num_threads()
    thread_counts = [default_threads if t == "default" else int(t) for t in args.threads.split(",")]
    device = torch.device(args.device)
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"# device: {device.type} ({dev_name}), torch {torch.__version__}")
    print(f"# torch default threads {default_threads}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"# repeats {args.repeats}, medians of interleaved steps, {args.clock} clock")
    print(
        "| model | threads | SGD ms | SAM ms | SAM/SGD | k=2 /SGD | k=5 /SGD | LSAM ms | LSAM/SGD "
        "| LSAM 2-pass/SGD | SAM state/params | peak extra/params |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for threads in thread_counts:
        torch.set_num_threads(threads)
        for key in models:
            name, kind, options, shape, batch = CASES[key]
            med, state_ratio, peak_ratio = bench_case(
                kind, options, shape, batch, device, args.repeats, variants, clock
            )
            state = "-" if state_ratio is None else f"{state_ratio:.2f}x"
            peak = "n/a (CPU)" if peak_ratio is None else f"{peak_ratio:.2f}x"
            print(
                f"| {name} | {threads} | {_ms(med, 'sgd')} | {_ms(med, 'sam')} | {_ratio(med, 'sam', 3)} | "
                f"{_ratio(med, 'sam_k2')} | {_ratio(med, 'sam_k5')} | {_ms(med, 'lsam')} | "
                f"{_ratio(med, 'lsam', 3)} | {_ratio(med, 'lsam_2pass', 3)} | {state} | {peak} |",
                flush=True,
            )
    torch.set_num_threads(default_threads)


if __name__ == "__main__":
    main()
