"""The batch scheduler a run executes under, read from its environment (SLURM, or submitit's
local executor), and how such a job asks to be requeued.

A run records :func:`current_job` in ``meta.json`` on every start, so a run directory says which
job (and which restart of it) trained it; :func:`requeue` is what a SLURM job calls after it has
checkpointed on a preemption or time-limit signal.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping
from typing import Any

from samlens.errors import EngineError

#: The signal submitit asks SLURM to send before a job's time limit (``--signal=USR2@90``).
TIME_LIMIT_SIGNAL = signal.SIGUSR2


def current_job(env: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """``{"scheduler": "slurm", "job_id": ..., "array_job_id": ..., "array_task_id": ...,
    "restart_count": ..., "node": ...}`` under SLURM, ``{"scheduler": "submitit-local",
    "job_id": ...}`` under submitit's local executor, None otherwise."""
    env = os.environ if env is None else env
    if env.get("SLURM_JOB_ID"):
        job: dict[str, Any] = {"scheduler": "slurm", "job_id": env["SLURM_JOB_ID"]}
        if env.get("SLURM_ARRAY_JOB_ID"):
            job["array_job_id"] = env["SLURM_ARRAY_JOB_ID"]
            job["array_task_id"] = env.get("SLURM_ARRAY_TASK_ID")
        job["restart_count"] = _int(env.get("SLURM_RESTART_COUNT"))
        job["node"] = env.get("SLURMD_NODENAME") or env.get("SLURM_JOB_NODELIST")
        job["tasks"] = _int(env.get("SLURM_NTASKS"), 1)
        return job
    if env.get("SUBMITIT_LOCAL_JOB_ID"):
        return {
            "scheduler": "submitit-local",
            "job_id": env["SUBMITIT_LOCAL_JOB_ID"],
            "tasks": _int(env.get("SUBMITIT_LOCAL_NTASKS"), 1),
        }
    return None


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


def under_slurm(env: Mapping[str, str] | None = None) -> bool:
    job = current_job(env)
    return job is not None and job["scheduler"] == "slurm"


def requeue_id(env: Mapping[str, str] | None = None) -> str:
    """The id ``scontrol requeue`` takes: ``<array job>_<task>`` for an array task (requeueing the
    task's own SLURM_JOB_ID would work too, but this is the id sacct and submitit show)."""
    env = os.environ if env is None else env
    if env.get("SLURM_ARRAY_JOB_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID')}"
    return env["SLURM_JOB_ID"]


def requeue(env: Mapping[str, str] | None = None, timeout_s: float = 60) -> str:
    """Put this SLURM job back in the queue (SLURM restarts it with SLURM_RESTART_COUNT + 1);
    returns the job id. EngineError when scontrol is missing or refuses."""
    job_id = requeue_id(env)
    try:
        subprocess.run(
            ["scontrol", "requeue", job_id], check=True, capture_output=True, text=True, timeout=timeout_s
        )
    except FileNotFoundError:
        raise EngineError(f"cannot requeue SLURM job {job_id}: scontrol is not on PATH") from None
    except subprocess.CalledProcessError as err:
        detail = (err.stderr or err.stdout or "").strip().splitlines()
        raise EngineError(
            f"scontrol requeue {job_id} failed: {detail[-1] if detail else f'exit {err.returncode}'}"
        ) from None
    except subprocess.TimeoutExpired:
        raise EngineError(f"scontrol requeue {job_id} did not answer in {timeout_s:.0f} s") from None
    return job_id
