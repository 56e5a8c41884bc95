"""Headroom of one stand-in setting: floor, ceiling, SGD and SAM on the same probe; appends one row.

For each seed, with the library's public APIs (``samlens.data.get_dataset``,
``samlens.models.get_model``, ``samlens.optim.build_optimizer``, ``samlens.probe``):

* floor    — the untrained network (same architecture and initialisation), probed;
* ceiling  — trained on the same dataset with ``shuffle_easy=true`` (only the hard block predicts
  the label in train), probed;
* sgd, sam — trained on the redundant train split, probed.

Every arm is probed with the balanced probe on the same ``probe_train`` / ``probe_test`` (the
stand-ins keep those splits identical with and without ``shuffle_easy``). The hard feature is
the label: ``probe_acc_label``. For SGD the script also records how its own predictions on
``probe_test`` (blocks independent there) agree with each block early in training: the easy
block learned first shows as high agreement with ``other`` and chance agreement with ``label``.

One JSON row per call is appended to ``--out`` (per-seed values, mean ± SE per arm, range =
ceiling − floor, and each optimizer's fraction of the range). Arms are run cheapest first, and
with ``--min-range`` SGD and SAM are skipped when the range of the finished seeds is too small.

    OMP_NUM_THREADS=1 python scripts/headroom_search.py mnist_fashion_dominoes \\
        -o fashion_classes=[0,2,4,6] -o mnist_classes=[0,1,2,3] -o block_size=16 \\
        --epochs 10 --seeds 0 1 2 --out headroom.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from samlens.data import get_dataset
from samlens.models import get_model
from samlens.optim import build_optimizer
from samlens.probe import Features, balanced_probe
from samlens.train.schedule import lr_factor

ARMS = ("floor", "ceiling", "sgd", "sam")
TRACK_STEPS = (10, 25, 50, 100)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"headroom_search: error: option {pair!r} is not key=value")
        options[key] = yaml.safe_load(value)
    return options


def features(model: torch.nn.Module, ds: Any, split: str) -> Features:
    model.eval()
    with torch.no_grad():
        x = ds.images(split)
        phi = torch.cat([model.features(b) for b in x.split(512)]).numpy()
    return Features(phi, ds.labels(split), ds.others(split), ds.groups(split))


def probe(model: torch.nn.Module, ds: Any, seed: int) -> dict[str, float]:
    result = balanced_probe(features(model, ds, "probe_train"), features(model, ds, "probe_test"), seed=seed)
    return {k: float(result[k]) for k in ("probe_acc_label", "probe_acc_other", "n_train", "n_test")}


def agreement(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, others: torch.Tensor):
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(b).argmax(1) for b in x.split(512)])
    model.train()
    return float((pred == others).float().mean()), float((pred == labels).float().mean())


def train(model, ds, args, optimizer: str, seed: int, track: bool) -> dict[str, Any]:
    """Cosine-scheduled minibatch training on the in-memory train split; returns the tracking log."""
    options: dict[str, Any] = {"lr": args.lr, "momentum": 0.9, "weight_decay": args.weight_decay}
    if optimizer == "sam":
        options["rho"] = args.rho
    opt = build_optimizer(optimizer, model, **options)
    x, y = ds.images("train"), torch.as_tensor(ds.labels("train"))
    steps_per_epoch = math.ceil(len(y) / args.batch_size)
    total = steps_per_epoch * args.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor("cosine", s, total))
    generator = torch.Generator().manual_seed(seed)
    probe_x = ds.images("probe_test")
    probe_y, probe_o = torch.as_tensor(ds.labels("probe_test")), torch.as_tensor(ds.others("probe_test"))
    log: dict[str, Any] = {}
    loss_fn = torch.nn.functional.cross_entropy
    model.train()
    step = 0
    for _ in range(args.epochs):
        for batch in torch.randperm(len(y), generator=generator).split(args.batch_size):
            xb, yb = x[batch], y[batch]

            def closure(xb=xb, yb=yb):
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(xb), yb)
                loss.backward()
                return loss

            loss = opt.step(closure)
            sched.step()
            step += 1
            if track and step in TRACK_STEPS:
                log[f"agree_easy@{step}"], log[f"agree_hard@{step}"] = agreement(
                    model, probe_x, probe_y, probe_o
                )
    log["train_loss"] = float(loss.detach())
    log["steps"] = step
    if track:
        log["agree_easy@end"], log["agree_hard@end"] = agreement(model, probe_x, probe_y, probe_o)
    return log


def run_arm(arm: str, args, options: dict[str, Any], seed: int) -> dict[str, Any]:
    torch.manual_seed(seed)
    ds = get_dataset(
        args.dataset, seed=seed, **{**options, **({"shuffle_easy": True} if arm == "ceiling" else {})}
    )
    model_options = {"width": args.width} if args.model == "small_cnn" else {}
    model = get_model(args.model, ds.num_classes, ds.input_shape, **model_options)
    start = time.perf_counter()
    log = (
        {}
        if arm == "floor"
        else train(model, ds, args, "sgd" if arm == "ceiling" else arm, seed, arm == "sgd")
    )
    return {**probe(model, ds, seed), **log, "seconds": round(time.perf_counter() - start, 1)}


def summary(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    se = round(float(v.std(ddof=1) / math.sqrt(len(v))), 4) if len(v) > 1 else None
    return {"mean": round(float(v.mean()), 4), "se": se, "n": len(v)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("-o", "--option", action="append", default=[], help="dataset option key=value (YAML)")
    parser.add_argument("--name", default=None, help="label of the setting in the results file")
    parser.add_argument("--model", default="small_cnn")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--rho", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--arms", default=",".join(ARMS), help="comma-separated subset of floor,ceiling,sgd,sam"
    )
    parser.add_argument(
        "--min-range", type=float, default=None, help="skip sgd/sam when ceiling - floor is below"
    )
    parser.add_argument("--out", type=Path, default=Path("headroom_search.jsonl"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # one thread is several times faster than two on a shared 2-core CPU
    options = parse_options(args.option)
    arms = [a for a in ARMS if a in args.arms.split(",")]
    per_arm: dict[str, list[dict[str, Any]]] = {}
    skipped = None
    for arm in arms:
        if (
            arm in ("sgd", "sam")
            and args.min_range is not None
            and "floor" in per_arm
            and "ceiling" in per_arm
        ):
            width = np.mean([r["probe_acc_label"] for r in per_arm["ceiling"]]) - np.mean(
                [r["probe_acc_label"] for r in per_arm["floor"]]
            )
            if width < args.min_range:
                skipped = f"range {width:.3f} < {args.min_range}"
                break
        for seed in args.seeds:
            result = run_arm(arm, args, options, seed)
            per_arm.setdefault(arm, []).append({"seed": seed, **result})
            print(f"{arm} seed {seed}: " + json.dumps(result), flush=True)
    row: dict[str, Any] = {
        "name": args.name,
        "dataset": args.dataset,
        "options": options,
        "model": args.model,
        "width": args.width,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "rho": args.rho,
        "seeds": args.seeds,
        "skipped": skipped,
        "runs": per_arm,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    cells = {arm: summary([r["probe_acc_label"] for r in runs]) for arm, runs in per_arm.items()}
    row["hard_probe"] = cells
    if "floor" in cells and "ceiling" in cells:
        floor, ceiling = cells["floor"]["mean"], cells["ceiling"]["mean"]
        row["range"] = round(ceiling - floor, 4)
        for arm in ("sgd", "sam"):
            if arm in cells and ceiling > floor:
                row[f"fraction_{arm}"] = round((cells[arm]["mean"] - floor) / (ceiling - floor), 3)
    with args.out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps({k: row[k] for k in row if k not in ("runs",)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
