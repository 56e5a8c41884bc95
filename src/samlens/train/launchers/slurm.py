"""The ``slurm`` launcher: one submitit job array, each job one run (optionally DDP over its tasks).

A job that SLURM preempts (SIGTERM) or warns of its time limit (SIGUSR2, ``--signal=USR2@90``)
checkpoints at the next step boundary (:mod:`samlens.train.preemption`), requeues itself with
``scontrol requeue`` and exits without a result, so the driver keeps waiting; the restarted job
calls the same function, which resumes from that checkpoint. The job ids of every start are in
the run's ``meta.json`` (``jobs``).
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samlens._optional import require
from samlens.errors import ConfigError, EngineError, Preempted
from samlens.train import scheduler
from samlens.train.launchers.base import LAUNCHERS, Batch, Outcome, RunFn, _Collector

# sbatch options the launcher itself sets: overriding them through ``params`` would break the
# array, its logs or the requeue signal, so they are refused with the option to use instead.
_MANAGED = {
    "array": "--workers (array parallelism)",
    "output": "none (submitit's log files)",
    "error": "none (submitit's log files)",
    "open-mode": "none",
    "signal": "none (USR2 before the time limit is what requeues a job)",
    "job-name": "none",
    "partition": "--partition",
    "time": "--time",
    "mem": "--mem",
    "account": "--account",
    "qos": "--qos",
    "constraint": "--constraint",
    "cpus-per-task": "--cpus-per-task",
}
_MEM = re.compile(r"^[1-9][0-9]*[KMGT]?$")


@dataclass(frozen=True)
class SlurmOptions:
    """What a researcher asks SLURM for, per run (one job of the array).

    ``tasks_per_run`` > 1 makes each run one DDP job of that many processes on one node (gloo on
    CPU, NCCL with ``gpus_per_task``); ``params`` are passed to sbatch as ``--KEY=VALUE``; ``setup``
    lines run in the job script before the run (``module load ...``, ``source venv/bin/activate``).
    """

    partition: str | None = None
    time_min: int = 240
    cpus_per_task: int = 1
    gpus_per_task: int = 0
    tasks_per_run: int = 1
    mem: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    setup: tuple[str, ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("time_min", "cpus_per_task", "tasks_per_run"):
            if getattr(self, name) < 1:
                raise ConfigError(f"slurm option {name} must be >= 1, got {getattr(self, name)}")
        if self.gpus_per_task < 0:
            raise ConfigError(f"slurm option gpus_per_task must be >= 0, got {self.gpus_per_task}")
        if self.mem is not None and not _MEM.match(self.mem):
            raise ConfigError(f"--mem {self.mem!r}: expected a size such as 16G, 4000M or 2000")
        for key in self.params:
            flag = key.replace("_", "-")
            if flag in _MANAGED:
                raise ConfigError(f"--slurm-param {key}: set by the launcher; use {_MANAGED[flag]} instead")

    def submitit_parameters(self, cluster: str, workers: int) -> dict[str, Any]:
        """``executor.update_parameters`` arguments for submitit's ``cluster`` executor."""
        params: dict[str, Any] = {
            "timeout_min": self.time_min,
            "cpus_per_task": self.cpus_per_task,
            "tasks_per_node": self.tasks_per_run,
            "nodes": 1,
            "name": "samlens-sweep",
        }
        if self.gpus_per_task:
            params["gpus_per_node"] = self.gpus_per_task * self.tasks_per_run
        if cluster != "slurm":
            return params
        params["slurm_array_parallelism"] = workers
        named = {
            "partition": self.partition,
            "mem": self.mem,
            "account": self.account,
            "qos": self.qos,
            "constraint": self.constraint,
        }
        params.update({f"slurm_{k}": v for k, v in named.items() if v})
        if self.setup:
            params["slurm_setup"] = list(self.setup)
        if self.params:
            params["slurm_additional_parameters"] = {k.replace("-", "_"): v for k, v in self.params.items()}
        return params


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    """``["key=value", ...]`` from ``--slurm-param``; ConfigError names a malformed pair."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", key):
            raise ConfigError(f"--slurm-param {pair!r}: expected KEY=VALUE, e.g. --slurm-param gres=gpu:1")
        params[key] = value
    return params


def _export_distributed() -> None:
    """In a job of several tasks, give each task torchrun's variables (RANK, WORLD_SIZE, ...), so
    the trainer's one environment check (``init_distributed``) makes the tasks one DDP run."""
    job = scheduler.current_job()
    if job is None or job.get("tasks", 1) <= 1 or "WORLD_SIZE" in os.environ:
        return
    from submitit.helpers import TorchDistributedEnvironment

    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def _global_rank() -> int:
    return int(os.environ.get("RANK") or os.environ.get("SLURM_PROCID") or 0)


class Requeueable:
    """The run function of every slurm job: DDP environment for multi-task jobs, and a requeue
    after a checkpoint on SIGTERM/SIGUSR2. ``checkpoint`` is submitit's hook (its own USR2 handler
    calls it when the trainer is not running, e.g. while data load): it resubmits the same call,
    which resumes the run from its last checkpoint."""

    def __init__(self, run_fn: RunFn) -> None:
        self.run_fn = run_fn

    def __call__(self, *args: Any) -> str:
        _export_distributed()
        try:
            return self.run_fn(*args)
        except Preempted as err:
            if not scheduler.under_slurm():
                raise
            if _global_rank() == 0:
                job_id = scheduler.requeue()
                print(f"{err}; requeued SLURM job {job_id}", file=sys.stderr, flush=True)
            # No result file: the driver sees the job pending again, not finished.
            sys.exit(-1)

    def checkpoint(self, *args: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args)


@LAUNCHERS.register("slurm")
def launch_slurm(
    batch: Batch,
    folder: str | os.PathLike[str] | None = None,
    cluster: str | None = None,
    slurm: SlurmOptions | None = None,
    poll_s: float = 1.0,
    **_: Any,
) -> list[Outcome]:
    """Submit one submitit job array (at most ``workers`` jobs at a time) and wait for it.

    ``cluster`` is submitit's: None picks SLURM when ``sbatch`` exists and local
    processes otherwise; "local" and "debug" force those executors.
    """
    with require("slurm"):
        import submitit
    options = slurm or SlurmOptions()
    tasks, workers = batch.tasks, batch.workers
    if folder is None:
        folder = Path(tasks[0].run_dir).parent / ".submitit"
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    executor.update_parameters(**options.submitit_parameters(executor.cluster, workers))
    # SLURM throttles the array itself; submitit's local executor starts every job at once,
    # so there the array is submitted in waves of ``workers``.
    wave = len(tasks) if executor.cluster == "slurm" else workers
    collect = _Collector(batch)
    for start in range(0, len(tasks), wave):
        chunk = tasks[start : start + wave]
        threads = [max(1, options.cpus_per_task)] * len(chunk)
        try:
            jobs = executor.map_array(
                Requeueable(batch.run_fn),
                [t.config for t in chunk],
                [t.run_dir for t in chunk],
                threads,
                [t.imports for t in chunk],
            )
        except (OSError, RuntimeError) as err:  # submitit's FailedJobError/FailedSubmissionError
            lines = [x for x in str(err).strip().splitlines() if x.strip()]
            raise EngineError(f"sbatch refused the job array: {lines[-1] if lines else err}") from None
        if start == 0 and jobs:
            batch.say(f"submitted {executor.cluster} job array {jobs[0].job_id.split('_')[0]} ({folder})")
        waiting = dict(zip(range(start, start + len(chunk)), jobs))
        while waiting:
            # Poll rather than wait in order, so each run is reported when it ends.
            finished = [i for i, job in waiting.items() if job.done()]
            for i in finished:
                job = waiting.pop(i)
                collect.result(i, lambda job=job: job.results()[0])
            if waiting and not finished:
                time.sleep(poll_s)
    return collect.ordered()
