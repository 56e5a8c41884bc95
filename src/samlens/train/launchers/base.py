"""Launchers: execute sweep points on an existing engine.

Every launcher runs :func:`samlens.train.sweep.run_point` once per pending point and
returns one :class:`Outcome` per point, in task order; ``report(outcome)`` is called as each
point finishes. Points are independent and idempotent (a run directory with ``done`` is
skipped by the runner itself, one that another process trains is reported ``running``), so
a launcher never needs to coordinate beyond "run these"; relaunching a sweep runs what is left.

- ``local``: a process pool (``spawn``, so workers never inherit a forked torch state);
  N runs in parallel on C cores get ``max(1, C // N)`` torch threads each.
- ``ray``: one Ray task per point; joins a running Ray cluster or starts a local one.
- ``slurm``: one submitit job array; on a machine without SLURM submitit's local
  executor runs the same array as local processes.

Workers receive absolute run directories (a Ray worker or a SLURM job starts in its own working
directory), and a "done" a worker reports is believed only when the driver sees the run's
``done`` marker itself: without a shared filesystem the results would be lost silently.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
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
    """What became of a task: "done", "failed" (marked by the runner), "running" (another
    process trains it) or "error" (an exception)."""

    run_dir: str
    state: str
    message: str = ""


RunFn = Callable[[dict[str, Any], str, int | None, tuple[str, ...]], str]
Report = Callable[[Outcome], None]
Say = Callable[[str], None]
Unwrap = Callable[[BaseException], BaseException]


@dataclass(frozen=True)
class Batch:
    """What every launcher is given: the tasks (never empty, run directories absolute), how many
    may run at once (checked), the function that runs one (the trainer unless a test passes its
    own), the report hook, and ``say`` for a launcher's own notes (which cluster it joined)."""

    tasks: Sequence[Task]
    workers: int
    run_fn: RunFn
    report: Report | None = None
    say: Say = print


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


def verified(outcome: Outcome) -> Outcome:
    """``outcome``, or an error when the driver cannot see the ``done`` its worker reported."""
    if outcome.state != "done" or (Path(outcome.run_dir) / "done").exists():
        return outcome
    return Outcome(
        outcome.run_dir,
        "error",
        f"the worker reported done but {outcome.run_dir}/done is not visible here: "
        "the launcher's workers must share this filesystem",
    )


class _Collector:
    """Outcomes in task order, each reported the moment it is known."""

    def __init__(self, batch: Batch) -> None:
        self.tasks, self.report = batch.tasks, batch.report
        self.outcomes: dict[int, Outcome] = {}

    def result(self, i: int, get: Callable[[], str], unwrap: Unwrap = lambda err: err) -> None:
        try:
            outcome = verified(Outcome(self.tasks[i].run_dir, get()))
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


def launch(
    name: str,
    tasks: Sequence[Task],
    workers: int = 1,
    *,
    run_fn: RunFn | None = None,
    report: Report | None = None,
    say: Say = print,
    **options: Any,
) -> list[Outcome]:
    """Run ``tasks`` with the launcher called ``name`` (ConfigError lists the valid names);
    ``options`` are that launcher's own (address, folder, partition, ...). Outcomes name each
    run directory as ``tasks`` did."""
    launcher = LAUNCHERS.get(name)
    workers = _check_workers(workers)
    if not tasks:
        return []
    given = {os.path.abspath(t.run_dir): t.run_dir for t in tasks}

    def as_given(outcome: Outcome) -> Outcome:
        return dataclasses.replace(outcome, run_dir=given.get(outcome.run_dir, outcome.run_dir))

    absolute = [dataclasses.replace(t, run_dir=os.path.abspath(t.run_dir)) for t in tasks]
    hook = None if report is None else (lambda outcome: report(as_given(outcome)))
    batch = Batch(absolute, workers, run_fn or _default_run_fn(), hook, say)
    return [as_given(o) for o in launcher(batch, **options)]
