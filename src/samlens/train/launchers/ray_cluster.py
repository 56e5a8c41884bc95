"""The ``ray`` launcher: one Ray task per point."""

from __future__ import annotations

from typing import Any

from samlens._optional import require
from samlens.train.launchers.base import LAUNCHERS, Batch, Outcome, _Collector


def _ray_cause(err: BaseException) -> BaseException:
    return getattr(err, "cause", None) or err


@LAUNCHERS.register("ray")
def launch_ray(
    batch: Batch,
    address: str | None = None,
    cpus_per_task: float = 1,
    gpus_per_task: float = 0,
    **_: Any,
) -> list[Outcome]:
    """One Ray task per point. Uses the running Ray instance if there is one (or ``address``);
    otherwise starts a local instance with ``workers`` CPUs and shuts it down afterwards."""
    with require("ray"):
        import ray
    tasks = batch.tasks
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=batch.workers, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        remote = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=0)(batch.run_fn)
        threads = max(1, int(cpus_per_task))
        refs = {remote.remote(t.config, t.run_dir, threads, t.imports): i for i, t in enumerate(tasks)}
        collect = _Collector(batch)
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                collect.result(refs[ref], lambda ref=ref: ray.get(ref), _ray_cause)
        return collect.ordered()
    finally:
        if started:
            ray.shutdown()
