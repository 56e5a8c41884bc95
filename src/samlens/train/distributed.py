"""DDP when launched by ``torchrun`` (one process per device, rank 0 writes the run directory),
and how many torch threads each training process uses."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    #: Whether ``init_distributed`` created the process group (then it is ours to tear down).
    owned: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        """Tear down the process group this run created. Left to live until interpreter exit,
        gloo's threads can abort the process after the results were written."""
        if self.owned and dist.is_initialized():
            dist.destroy_process_group()

    def agree(self, value: int, device: torch.device) -> int:
        """The largest of every process's ``value``, on every process (a decision rank 0 made)."""
        if not self.enabled:
            return value
        flag = torch.tensor(value, device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag)

    def all_sum(self, value: torch.Tensor) -> torch.Tensor:
        """Sum of ``value`` over processes (a copy; the input is left alone)."""
        value = value.clone()
        if self.enabled:
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value


def init_distributed() -> DistContext:
    """Join the process group described by torchrun's environment, if there is one."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    owned = not dist.is_initialized()
    if owned:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    return DistContext(rank, world_size, local_rank, owned)


def pick_device(ctx: DistContext) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", ctx.local_rank)
    return torch.device("cpu")


# Intra-op threads for a run when none is asked for. Measured by ``benchmarks/threads.py`` on
# the demo-size step (docs/benchmarks.md): on a shared 2-core machine a second thread made a
# step 12-21x slower and burned 15-27x the CPU time, as its workers spin while other processes
# hold the cores. Larger models on an idle machine can ask for more (``samlens run --threads``).
SINGLE_RUN_THREADS = 1


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which container limits narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Threads for each of ``workers`` runs sharing ``cores``: ``max(1, cores // workers)``."""
    cores = available_cores() if cores is None else cores
    return max(1, cores // max(1, workers))


def default_threads() -> int:
    """Threads for a run when none is asked for: the measured single-run choice, divided
    among the processes torchrun starts on this machine."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return min(SINGLE_RUN_THREADS, threads_per_worker(local))
