"""The trainer's side of a run directory: whether it may train there, and the files it writes
around the loop (``config.yaml``, ``meta.json`` and ``running`` before; ``failed`` or ``done`` after).

The format itself (names, atomic writes, the lock, status) is :mod:`samlens.rundir`.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from samlens import rundir
from samlens.errors import ConfigError
from samlens.train.build import read_config
from samlens.train.config import ExperimentConfig, config_hash, dump_config
from samlens.train.distributed import DistContext
from samlens.train.events import now
from samlens.train.scheduler import current_job


def check_same_config(run_dir: Path, cfg: ExperimentConfig) -> None:
    """Refuse to resume (or skip) a run directory that belongs to another config."""
    if (run_dir / rundir.CONFIG).exists():
        old = read_config(run_dir)
        if config_hash(old) != config_hash(cfg):
            raise ConfigError(
                f"run directory {str(run_dir)!r} holds a different config "
                f"(hash {config_hash(old)}, requested {config_hash(cfg)}); use another directory"
            )


def skip_message(run_dir: Path) -> str | None:
    """Why a run needs no training (done, or failed earlier), or None."""
    if rundir.is_done(run_dir):
        return f"{run_dir}: already done"
    if rundir.is_failed(run_dir):
        return f"{run_dir}: failed earlier; remove {run_dir / rundir.FAILED} to retry"
    return None


def _prepare(run_dir: Path) -> None:
    """Create ``run_dir`` (or accept an existing one) and check it is writable, or raise ConfigError."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"cannot write run directory {str(run_dir)!r}: {err.strerror or err}") from None


def claim(run_dir: Path, lock: rundir.RunLock, ctx: DistContext, device: torch.device) -> int:
    """Rank 0 prepares the directory and takes its lock; every rank gets rank 0's verdict:
    0 to train, 1 when another process holds the lock, 2 when it finished the run meanwhile."""
    verdict = 0
    if ctx.is_main:
        _prepare(run_dir)
        try:
            lock.acquire()
        except rundir.RunBusy:
            verdict = 1
        if verdict == 0 and skip_message(run_dir) is not None:
            verdict = 2
    return ctx.agree(verdict, device)


def write_start(run_dir: Path, cfg: ExperimentConfig, meta: Callable[[], dict[str, Any]]) -> None:
    """``config.yaml`` and ``meta.json`` (``meta()``) on the first start only; the ``running`` marker.
    Under a scheduler, every start adds its job to meta.json's ``jobs`` (a requeued job's restarts
    and a relaunch's new job each appear once)."""
    if not (run_dir / rundir.CONFIG).exists():
        dump_config(cfg, run_dir / rundir.CONFIG)
    path = run_dir / rundir.META
    if not path.exists():
        rundir.atomic_write_text(path, json.dumps(meta(), indent=2) + "\n")
    elif (job := current_job()) is not None:
        _add_job(run_dir, job)
    marker = {"pid": os.getpid(), "host": socket.gethostname(), "started": now()}
    rundir.atomic_write_text(run_dir / rundir.RUNNING, json.dumps(marker) + "\n")


def _add_job(run_dir: Path, job: dict[str, Any]) -> None:
    data = rundir.read_meta(run_dir)
    if not isinstance(data, dict) or not data:
        return  # provenance only: a damaged meta.json must not stop the run
    jobs = data.get("jobs") if isinstance(data.get("jobs"), list) else []
    if job not in jobs:
        data["jobs"] = [*jobs, job]
        rundir.atomic_write_text(run_dir / rundir.META, json.dumps(data, indent=2) + "\n")


def write_failed(run_dir: Path, reason: str) -> None:
    rundir.atomic_write_text(run_dir / rundir.FAILED, reason + "\n")


def write_done(run_dir: Path, step: int) -> None:
    """``done``, which promises a readable final record at ``step``; without one, rerunning the
    same command writes it again."""
    if not rundir.has_final(run_dir, step):
        raise rundir.ResultsUnreadable(
            f"{run_dir / rundir.RESULTS}: the final record does not read back; "
            "run the same command again to rewrite it"
        )
    rundir.atomic_write_text(run_dir / rundir.DONE, now() + "\n")
