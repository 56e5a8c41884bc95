"""Run directories: the files one training run leaves behind, and how to read them back.

Layout of a run directory::

    config.yaml     resolved config (written first)
    meta.json       provenance: git commit, package versions, device, seeds, world size
    results.jsonl   append-only, one JSON object per eval / probe / final / failed event
    checkpoint.pt   latest checkpoint, replaced atomically
    train.log       human-readable log
    running         present while a process trains the run (pid and host inside)
    failed          written instead of ``done`` when the run stops on an error (reason inside)
    done            written last, only after a complete run
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from samlens.train.config import ExperimentConfig, load_config

CONFIG = "config.yaml"
META = "meta.json"
RESULTS = "results.jsonl"
CHECKPOINT = "checkpoint.pt"
LOG = "train.log"
RUNNING = "running"
FAILED = "failed"
DONE = "done"

STATUSES = ("done", "failed", "running", "pending")


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temp file next to ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)


def atomic_save(path: str | os.PathLike[str], save: Callable[[IO[bytes]], None]) -> None:
    """``save(fh)`` into a temp file, then rename over ``path`` (e.g. ``torch.save``)."""
    with atomic_open(path, "wb") as fh:
        save(fh)


def append_result(run_dir: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one JSON line to ``results.jsonl`` (a single write, so lines never interleave)."""
    line = json.dumps(record, sort_keys=False, allow_nan=True) + "\n"
    with open(Path(run_dir) / RESULTS, "a") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def read_results(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All events of a run, in order; a torn last line (killed mid-write) is ignored."""
    path = Path(run_dir) / RESULTS
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def read_config(run_dir: str | os.PathLike[str]) -> ExperimentConfig:
    """The resolved config a run was started with."""
    return load_config(Path(run_dir) / CONFIG)


def read_meta(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(run_dir) / META
    return json.loads(path.read_text()) if path.exists() else {}


def is_done(run_dir: str | os.PathLike[str]) -> bool:
    return (Path(run_dir) / DONE).exists()


def is_failed(run_dir: str | os.PathLike[str]) -> bool:
    return (Path(run_dir) / FAILED).exists()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_status(run_dir: str | os.PathLike[str]) -> str:
    """One of ``done``, ``failed``, ``running`` or ``pending`` (not started, or interrupted).

    ``running`` means a ``running`` marker exists and, when it was written on this host,
    its process is still alive; a stale marker (killed run) counts as ``pending``.
    """
    run_dir = Path(run_dir)
    if (run_dir / DONE).exists():
        return "done"
    if (run_dir / FAILED).exists():
        return "failed"
    marker = run_dir / RUNNING
    if marker.exists():
        try:
            info = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            return "running"
        if info.get("host") != socket.gethostname():
            return "running"
        return "running" if _pid_alive(int(info.get("pid", -1))) else "pending"
    return "pending"


def load_checkpoint(run_dir: str | os.PathLike[str], map_location: str = "cpu") -> dict[str, Any] | None:
    """The latest checkpoint dict of a run, or None if it has none yet."""
    import torch

    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    return torch.load(path, map_location=map_location, weights_only=False)


def load_run(
    run_dir: str | os.PathLike[str], *, map_location: str = "cpu"
) -> tuple[ExperimentConfig, Any, Any]:
    """``(cfg, model, dataset)`` of a run; the model holds the checkpoint's weights, in eval mode."""
    from samlens.errors import ConfigError
    from samlens.train.build import build_dataset, build_model

    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).exists():
        raise ConfigError(f"{str(run_dir)!r} is not a run directory (no {CONFIG})")
    cfg = read_config(run_dir)
    ckpt = load_checkpoint(run_dir, map_location)
    if ckpt is None:
        raise ConfigError(f"run {str(run_dir)!r} has no checkpoint yet")
    dataset = build_dataset(cfg)
    model = build_model(cfg, dataset, load_pretrained=False)
    model.load_state_dict(ckpt["model"])
    model.eval()
    return cfg, model, dataset
