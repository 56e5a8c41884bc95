"""The ``slurm`` launcher: one submitit job array."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from samlens._optional import require
from samlens.train.launchers.base import LAUNCHERS, Batch, Outcome, RunFn, _Collector


class Requeueable:
    """A run function submitit may requeue: on the signal SLURM sends before a time limit or a
    preemption (submitit's USR2), submitit calls ``checkpoint`` and resubmits the same call, which
    resumes the run from its last checkpoint (``train.checkpoint_every`` bounds what is redone)."""

    def __init__(self, run_fn: RunFn) -> None:
        self.run_fn = run_fn

    def __call__(self, *args: Any) -> str:
        return self.run_fn(*args)

    def checkpoint(self, *args: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args)


@LAUNCHERS.register("slurm")
def launch_slurm(
    batch: Batch,
    folder: str | os.PathLike[str] | None = None,
    cluster: str | None = None,
    partition: str | None = None,
    timeout_min: int = 240,
    cpus_per_task: int = 1,
    gpus_per_task: int = 0,
    poll_s: float = 1.0,
    **_: Any,
) -> list[Outcome]:
    """Submit one submitit job array (at most ``workers`` jobs at a time) and wait for it.

    ``cluster`` is submitit's: None picks SLURM when ``sbatch`` exists and local
    processes otherwise; "local" and "debug" force those executors.
    """
    with require("slurm"):
        import submitit
    tasks, workers = batch.tasks, batch.workers
    if folder is None:
        folder = Path(tasks[0].run_dir).parent / ".submitit"
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    params: dict[str, Any] = {
        "timeout_min": timeout_min,
        "cpus_per_task": cpus_per_task,
        "name": "samlens-sweep",
    }
    if executor.cluster == "slurm":
        params["slurm_array_parallelism"] = workers
        if partition:
            params["slurm_partition"] = partition
        if gpus_per_task:
            params["gpus_per_node"] = gpus_per_task
    executor.update_parameters(**params)
    # SLURM throttles the array itself; submitit's local executor starts every job at once,
    # so there the array is submitted in waves of ``workers``.
    wave = len(tasks) if executor.cluster == "slurm" else workers
    collect = _Collector(batch)
    for start in range(0, len(tasks), wave):
        chunk = tasks[start : start + wave]
        threads = [max(1, cpus_per_task)] * len(chunk)
        jobs = executor.map_array(
            Requeueable(batch.run_fn),
            [t.config for t in chunk],
            [t.run_dir for t in chunk],
            threads,
            [t.imports for t in chunk],
        )
        waiting = dict(zip(range(start, start + len(chunk)), jobs))
        while waiting:
            # Poll rather than wait in order, so each run is reported when it ends.
            finished = [i for i, job in waiting.items() if job.done()]
            for i in finished:
                collect.result(i, waiting.pop(i).result)
            if waiting and not finished:
                time.sleep(poll_s)
    return collect.ordered()
