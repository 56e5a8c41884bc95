"""Launchers: execute sweep points on an existing engine (see :mod:`samlens.train.launchers.base`).

Importing the package registers every launcher: ``local`` (process pool), ``ray`` and ``slurm``
(submitit); the engines themselves are imported only when a launcher runs.
"""

from samlens.train.launchers import local, ray_cluster, slurm  # noqa: F401  (registration)
from samlens.train.launchers.base import (
    LAUNCHERS,
    Batch,
    Outcome,
    Report,
    RunFn,
    Task,
    launch,
    local_threads,
)
from samlens.train.launchers.slurm import Requeueable

__all__ = [
    "LAUNCHERS",
    "Batch",
    "Outcome",
    "Report",
    "RunFn",
    "Requeueable",
    "Task",
    "launch",
    "local_threads",
]
