"""Launchers: execute sweep points on an existing engine.

Every launcher runs :func:`samlens.train.sweep.run_point` once per pending point and
returns one :class:`Outcome` per point, in task order; ``report(outcome)`` is called as each
point finishes. Points are independent and idempotent (a run directory with ``done`` is
skipped by the runner itself, one that another process trains is reported ``running``), so
a launcher never needs to coordinate beyond "run these"; relaunching a sweep runs what is left.

- ``local``: a process pool (``spawn``, so workers never inherit a forked torch state);
  N runs in parallel on C cores get ``max(1, C // N)`` torch threads each.
- ``ray``: one Ray task per point; joins a running Ray instance or starts a local one.
- ``slurm``: one submitit job array; on a machine without SLURM submitit's local
  executor runs the same array as local processes.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samlens._optional import require
from samlens.errors import ConfigError
from samlens.registry import Registry


@dataclass(frozen=True)
class Task:
    """One unit of work: a nested config dict, the directory it runs in, and the plugin
    modules a worker imports first (see the grid spec's ``imports``)."""

    config: dict[str, Any]
    run_dir: str
    imports: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """What became of a task: "done", "failed" (marked by the runner), "running" (another
    process trains it) or "error" (an exception)."""

    run_dir: str
    state: str
    message: str = ""


RunFn = Callable[[dict[str, Any], str, int | None, tuple[str, ...]], str]
Report = Callable[[Outcome], None]
Unwrap = Callable[[BaseException], BaseException]


@dataclass(frozen=True)
class Batch:
    """What every launcher is given: the tasks (never empty), how many may run at once (checked),
    the function that runs one (the trainer unless a test passes its own) and the report hook."""

    tasks: Sequence[Task]
    workers: int
    run_fn: RunFn
    report: Report | None = None


LAUNCHERS: Registry[Callable[..., list[Outcome]]] = Registry("launcher")


def _default_run_fn() -> RunFn:
    from samlens.train.sweep import run_point

    return run_point


def _error(task: Task, err: BaseException) -> Outcome:
    # Engines wrap a worker's exception with its traceback; the last line names the cause.
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    text = lines[0] if len(lines) <= 1 else f"{lines[0]} ... {lines[-1]}"
    return Outcome(task.run_dir, "error", f"{type(err).__name__}: {text}")


def _check_workers(workers: int) -> int:
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    return workers


class _Collector:
    """Outcomes in task order, each reported the moment it is known."""

    def __init__(self, batch: Batch) -> None:
        self.tasks, self.report = batch.tasks, batch.report
        self.outcomes: dict[int, Outcome] = {}

    def result(self, i: int, get: Callable[[], str], unwrap: Unwrap = lambda err: err) -> None:
        try:
            outcome = Outcome(self.tasks[i].run_dir, get())
        except Exception as err:  # a crashed run must not stop the others
            outcome = _error(self.tasks[i], unwrap(err))
        self.outcomes[i] = outcome
        if self.report is not None:
            self.report(outcome)

    def ordered(self) -> list[Outcome]:
        return [self.outcomes[i] for i in range(len(self.tasks))]


def local_threads(workers: int, tasks: int, cores: int | None = None) -> int | None:
    """Torch threads per local worker: ``max(1, C // N)`` for N parallel runs on C cores;
    None (the runner's single-run default) when runs go one at a time."""
    from samlens.train.distributed import threads_per_worker

    parallel = min(workers, tasks)
    return threads_per_worker(parallel, cores) if parallel > 1 else None


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


def launch(
    name: str,
    tasks: Sequence[Task],
    workers: int = 1,
    *,
    run_fn: RunFn | None = None,
    report: Report | None = None,
    **options: Any,
) -> list[Outcome]:
    """Run ``tasks`` with the launcher called ``name`` (ConfigError lists the valid names);
    ``options`` are that launcher's own (address, folder, partition, ...)."""
    launcher = LAUNCHERS.get(name)
    batch = Batch(list(tasks), _check_workers(workers), run_fn or _default_run_fn(), report)
    return launcher(batch, **options) if batch.tasks else []
