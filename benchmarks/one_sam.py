"""Step time of exact 1-SAM (per-example ascent) against n-SAM (one ascent for the batch).

MLP on 3×32×32 inputs, batch 128, float32 CPU. Prints median step times (ms) and the ratios:
1-SAM (ghost engine) / n-SAM must be ≤ 1.5; the naive per-example loop (two passes per example)
is shown for scale, timed on fewer steps because it is ~batch× slower.

    python benchmarks/one_sam.py [--steps 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from samlens.models import get_model
from samlens.optim.per_example import MicroBatchSAM
from samlens.optim.sam import SAM

BATCH, CLASSES, SHAPE, HIDDEN, RHO = 128, 10, (3, 32, 32), (512, 512), 0.05


def _time(step, steps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def _closure(opt, model, x, y):
    def closure():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    return closure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, y = torch.randn(BATCH, *SHAPE), torch.randint(0, CLASSES, (BATCH,))

    def fresh():
        return get_model("mlp", CLASSES, SHAPE, hidden=HIDDEN)

    model_n = fresh()
    n_sam = SAM(torch.optim.SGD(model_n.parameters(), lr=0.01), rho=RHO)
    model_1 = fresh()
    one_sam = MicroBatchSAM(model_1, torch.optim.SGD(model_1.parameters(), lr=0.01), m=1, rho=RHO)
    model_s = fresh()
    sgd = torch.optim.SGD(model_s.parameters(), lr=0.01)

    model_loop = fresh()
    params = list(model_loop.parameters())
    base_loop = torch.optim.SGD(params, lr=0.01)

    def naive_loop() -> None:
        total = [torch.zeros_like(p) for p in params]
        for i in range(BATCH):
            xi, yi = x[i : i + 1], y[i : i + 1]
            g = torch.autograd.grad(F.cross_entropy(model_loop(xi), yi), params)
            scale = RHO / (torch.sqrt(sum((gi * gi).sum() for gi in g)) + 1e-12)
            with torch.no_grad():
                saved = [p.clone() for p in params]
                for p, gi in zip(params, g):
                    p.add_(gi, alpha=float(scale))
            h = torch.autograd.grad(F.cross_entropy(model_loop(xi), yi), params)
            with torch.no_grad():
                for p, s, t, hi in zip(params, saved, total, h):
                    p.copy_(s)
                    t.add_(hi, alpha=1 / BATCH)
        for p, t in zip(params, total):
            p.grad = t
        base_loop.step()

    rows = []
    t_sgd = _time(lambda: sgd.step(_closure(sgd, model_s, x, y)), args.steps)
    # interleave the two compared optimizers so machine load affects both alike
    t_n, t_1 = [], []
    for _ in range(3):
        t_n.append(_time(lambda: n_sam.step(_closure(n_sam, model_n, x, y)), args.steps))
        t_1.append(_time(lambda: one_sam.step(_closure(one_sam, model_1, x, y)), args.steps))
    t_n_med, t_1_med = statistics.median(t_n), statistics.median(t_1)
    t_loop = _time(naive_loop, max(2, args.steps // 10), warmup=1)
    rows = [
        ("SGD (one pass)", t_sgd),
        ("n-SAM (samlens.optim.SAM)", t_n_med),
        ("1-SAM, ghost engine (msam m=1)", t_1_med),
        ("1-SAM, naive per-example loop", t_loop),
    ]
    print(f"MLP {SHAPE} -> {HIDDEN} -> {CLASSES}, batch {BATCH}, {args.threads} threads, median of steps")
    print(f"{'optimizer':34s} {'ms/step':>9s} {'/ n-SAM':>8s}")
    for name, t in rows:
        print(f"{name:34s} {t:9.2f} {t / t_n_med:8.2f}")
    ratio = t_1_med / t_n_med
    print(f"\n1-SAM / n-SAM = {ratio:.2f} (target <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'})")
    print(f"naive loop / n-SAM = {t_loop / t_n_med:.1f}")


if __name__ == "__main__":
    main()
