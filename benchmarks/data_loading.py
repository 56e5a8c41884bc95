"""Training-batch loading speed: Waterbirds-format JPEGs at 224 px, 0 vs N worker processes.

Builds a synthetic Waterbirds folder (``metadata.csv`` + species folders) of ``--images``
JPEGs in a temporary directory: crops of scikit-image photos at CUB-like sizes (about
500x375), so decoding and resizing cost what they cost on the real data. Then loads the
train split with its training transform (RandomResizedCrop + flip + ImageNet normalisation,
224 px) through ``samlens.data.loading.BatchLoader`` in the runner's epoch order, for each
worker count, and prints images/s. Each setting loads one warm-up epoch (starting the
persistent workers), then ``--rounds`` timed epochs; the settings alternate within each round
so that a change in machine load hits them alike, and the median epoch counts.

    OMP_NUM_THREADS=1 python benchmarks/data_loading.py [--images 512] [--batch 64] [--workers 0 2]
        [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from samlens.data import get_dataset
from samlens.data.loading import BatchLoader
from samlens.train.distributed import DistContext
from samlens.train.reproducibility import epoch_batches


def write_waterbirds(root: Path, n: int, seed: int = 0) -> None:
    """``n`` train images plus a few val/test rows, as ``metadata.csv`` + species folders."""
    import skimage.data

    names = ("astronaut", "chelsea", "coffee")
    photos = [np.asarray(getattr(skimage.data, name)())[..., :3] for name in names]
    rng = np.random.default_rng(seed)
    rows = ["img_id,img_filename,y,split,place,place_filename"]
    for i in range(n + 8):
        photo = photos[i % len(photos)]
        h, w = int(rng.integers(300, 376)), int(rng.integers(400, 501))
        big = np.asarray(Image.fromarray(photo).resize((max(w, 512), max(h, 512))))
        top, left = int(rng.integers(0, big.shape[0] - h + 1)), int(rng.integers(0, big.shape[1] - w + 1))
        y = i % 2
        name = f"{'001.Albatross' if y else '002.Sparrow'}/img_{i:05d}.jpg"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(big[top : top + h, left : left + w]).save(root / name, quality=90)
        split = 0 if i < n else 1 + (i % 2)
        rows.append(f"{i},{name},{y},{split},{(i // 2) % 2},x.jpg")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")


def interleaved_rates(
    view, batch: int, workers: list[int], rounds: int
) -> tuple[dict[int, list[float]], dict[int, list[float]]]:
    """images/s and training-process CPU ms per image, per epoch, for each worker count.

    The settings alternate within every round, so a change in machine load (other jobs) does
    not favour one of them. CPU time counts this process only: what decoding costs the process
    that also runs the training step.
    """
    loaders = {w: BatchLoader(view, num_workers=w) for w in workers}
    rates: dict[int, list[float]] = {w: [] for w in workers}
    cpu_ms: dict[int, list[float]] = {w: [] for w in workers}
    for epoch in range(rounds + 1):
        batches = epoch_batches(len(view), batch, seed=0, epoch=epoch, ctx=DistContext())
        for w, loader in loaders.items():
            start, cpu = time.perf_counter(), time.process_time()
            count = sum(len(y) for _, y in loader.epoch(batches, seed=0, epoch=epoch))
            if epoch > 0:  # round 0 starts the workers
                rates[w].append(count / (time.perf_counter() - start))
                cpu_ms[w].append(1000 * (time.process_time() - cpu) / count)
    return rates, cpu_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs per setting")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "waterbird_complete95_forest2water2"
        write_waterbirds(root, args.images)
        view = get_dataset("waterbirds", root=root, image_size=args.size).split("train", train=True)
        print(f"{len(view)} JPEGs (~500x375) -> {args.size} px, batch {args.batch}, {os.cpu_count()} CPUs")
        rates, cpu_ms = interleaved_rates(view, args.batch, args.workers, args.rounds)
    print(f"load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f}")
    first = args.workers[0]
    base = statistics.median(rates[first])
    print(
        f"\n| data.num_workers | images/s (median of {args.rounds}) | min-max | vs {first} workers "
        "| training-process CPU ms/image |"
    )
    print("|---:|---:|---:|---:|---:|")
    for workers, values in rates.items():
        rate = statistics.median(values)
        cpu = statistics.median(cpu_ms[workers])
        spread = f"{min(values):.0f}-{max(values):.0f}"
        print(f"| {workers} | {rate:.1f} | {spread} | {rate / base:.2f}x | {cpu:.2f} |")


if __name__ == "__main__":
    main()
