"""The ``local`` launcher: a pool of spawned processes on this machine."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from samlens.train.launchers.base import LAUNCHERS, Batch, Outcome, _Collector, local_threads


@LAUNCHERS.register("local")
def launch_local(batch: Batch, **_: Any) -> list[Outcome]:
    """Run tasks in a pool of ``workers`` spawned processes (``local_threads`` torch threads each)."""
    tasks, run_fn = batch.tasks, batch.run_fn
    threads = local_threads(batch.workers, len(tasks))
    ctx = multiprocessing.get_context("spawn")
    collect = _Collector(batch)
    with ProcessPoolExecutor(max_workers=min(batch.workers, len(tasks)), mp_context=ctx) as pool:
        futures = {
            pool.submit(run_fn, t.config, t.run_dir, threads, t.imports): i for i, t in enumerate(tasks)
        }
        for future in as_completed(futures):
            collect.result(futures[future], future.result)
    return collect.ordered()
