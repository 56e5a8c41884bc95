"""What makes a run repeatable: deterministic kernels, seeds, generator states, thread counts and
the data order of each epoch.

A resumed run must continue bit-for-bit where the killed one stopped, so every generator's
state goes into the checkpoint and the data order depends on (seed, epoch) only.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from samlens.train.distributed import DistContext


@contextlib.contextmanager
def deterministic(enabled: bool) -> Iterator[None]:
    """Deterministic kernels for the duration of the run (restored afterwards)."""
    if not enabled:
        yield
        return
    previous = torch.are_deterministic_algorithms_enabled()
    cudnn = torch.backends.cudnn.benchmark
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
        torch.backends.cudnn.benchmark = cudnn


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """``threads`` intra-op threads for the duration of the run (restored afterwards)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def rng_state() -> dict[str, Any]:
    """Every generator's state as tensors, numbers and lists, so checkpoints load with
    ``torch.load(weights_only=True)``."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": int(version), "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back what :func:`rng_state` saved (or the numpy/tuple layout of older checkpoints)."""
    torch.set_rng_state(state["torch"])
    npy, py = state["numpy"], state["python"]
    if isinstance(npy, dict):
        keys = npy["keys"].numpy().astype(np.uint32)
        np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    else:  # checkpoints written before the tensor layout
        np.random.set_state(npy)
    if isinstance(py, dict):
        random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    else:
        random.setstate(py)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_all(seed: int) -> None:
    """Seed torch, numpy and ``random`` for a run that starts from scratch."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, ctx: DistContext) -> list[list[int]]:
    """This process's batches of one epoch: a permutation drawn from (seed, epoch) only.

    Depending on nothing else makes the data order identical for paired runs and
    reproducible after a resume without saving a sampler state. Under DDP each global
    batch of ``batch_size · world_size`` is dealt out across ranks.
    """
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=gen).tolist()
    global_batch = batch_size * ctx.world_size
    # Dropping the ragged tail keeps BatchNorm away from batches of one example.
    count = n // global_batch if n >= global_batch else 1
    batches = []
    for b in range(count):
        chunk = order[b * global_batch : (b + 1) * global_batch]
        batches.append(chunk[ctx.rank :: ctx.world_size])
    return batches
