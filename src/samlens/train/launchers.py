"""Launchers: execute sweep points on an existing engine.

Every launcher runs :func:`samlens.train.sweep.run_point` once per pending point and
returns one :class:`Outcome` per point. Points are independent and idempotent (a run
directory with ``done`` is skipped by the runner itself), so a launcher never needs to
coordinate beyond "run these"; relaunching a sweep just runs what is left.

- ``local``: a process pool (``spawn``, so workers never inherit a forked torch state).
- ``ray``: one Ray task per point; joins a running Ray instance or starts a local one.
- ``slurm``: one submitit job array; on a machine without SLURM submitit's local
  executor runs the same array as local processes.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    """What became of a task: "done", "failed" (marked by the runner) or "error" (an exception)."""

    run_dir: str
    state: str
    message: str = ""


RunFn = Callable[[dict[str, Any], str, int | None, tuple[str, ...]], str]

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


@LAUNCHERS.register("local")
def launch_local(
    tasks: Sequence[Task], workers: int = 1, run_fn: RunFn | None = None, **_: Any
) -> list[Outcome]:
    """Run tasks in a pool of ``workers`` spawned processes (one torch thread each when > 1)."""
    run_fn = run_fn or _default_run_fn()
    workers = _check_workers(workers)
    if not tasks:
        return []
    threads = 1 if workers > 1 else None
    ctx = multiprocessing.get_context("spawn")
    outcomes: list[Outcome] = []
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx) as pool:
        futures = [pool.submit(run_fn, t.config, t.run_dir, threads, t.imports) for t in tasks]
        for task, future in zip(tasks, futures):
            try:
                outcomes.append(Outcome(task.run_dir, future.result()))
            except Exception as err:  # a crashed run must not stop the others
                outcomes.append(_error(task, err))
    return outcomes


@LAUNCHERS.register("ray")
def launch_ray(
    tasks: Sequence[Task],
    workers: int = 1,
    run_fn: RunFn | None = None,
    address: str | None = None,
    cpus_per_task: float = 1,
    gpus_per_task: float = 0,
    **_: Any,
) -> list[Outcome]:
    """One Ray task per point. Uses the running Ray instance if there is one (or ``address``);
    otherwise starts a local instance with ``workers`` CPUs and shuts it down afterwards."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray launcher needs Ray: pip install 'samlens[ray]'") from None
    run_fn = run_fn or _default_run_fn()
    workers = _check_workers(workers)
    if not tasks:
        return []
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        remote = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=0)(run_fn)
        threads = max(1, int(cpus_per_task))
        refs = [remote.remote(t.config, t.run_dir, threads, t.imports) for t in tasks]
        outcomes = []
        for task, ref in zip(tasks, refs):
            try:
                outcomes.append(Outcome(task.run_dir, ray.get(ref)))
            except Exception as err:
                outcomes.append(_error(task, getattr(err, "cause", None) or err))
        return outcomes
    finally:
        if started:
            ray.shutdown()


@LAUNCHERS.register("slurm")
def launch_slurm(
    tasks: Sequence[Task],
    workers: int = 1,
    run_fn: RunFn | None = None,
    folder: str | os.PathLike[str] | None = None,
    cluster: str | None = None,
    partition: str | None = None,
    timeout_min: int = 240,
    cpus_per_task: int = 1,
    gpus_per_task: int = 0,
    **_: Any,
) -> list[Outcome]:
    """Submit one submitit job array (at most ``workers`` jobs at a time) and wait for it.

    ``cluster`` is submitit's: None picks SLURM when ``sbatch`` exists and local
    processes otherwise; "local" and "debug" force those executors.
    """
    try:
        import submitit
    except ImportError:
        raise ConfigError("the slurm launcher needs submitit: pip install 'samlens[slurm]'") from None
    run_fn = run_fn or _default_run_fn()
    workers = _check_workers(workers)
    if not tasks:
        return []
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
    outcomes = []
    for start in range(0, len(tasks), wave):
        chunk = tasks[start : start + wave]
        threads = [max(1, cpus_per_task)] * len(chunk)
        jobs = executor.map_array(
            run_fn,
            [t.config for t in chunk],
            [t.run_dir for t in chunk],
            threads,
            [t.imports for t in chunk],
        )
        for task, job in zip(chunk, jobs):
            try:
                outcomes.append(Outcome(task.run_dir, job.result()))
            except Exception as err:
                outcomes.append(_error(task, err))
    return outcomes


def launch(name: str, tasks: Sequence[Task], workers: int = 1, **options: Any) -> list[Outcome]:
    """Run ``tasks`` with the launcher called ``name`` (ConfigError lists the valid names)."""
    return LAUNCHERS.get(name)(list(tasks), workers=workers, **options)
