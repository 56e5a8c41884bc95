"""Run directories: the files one training run leaves behind, and how to read them back.

Layout of a run directory::

    config.yaml     resolved config (written first)
    meta.json       provenance: git commit, package versions, device, seeds, world size, threads
    results.jsonl   append-only, one JSON object per eval / probe / final / failed event
    checkpoint.pt   latest checkpoint, replaced atomically; tensors, numbers and strings only
    train.log       human-readable log
    metrics.csv     with the ``csv`` logger: step, epoch, key, value rows (``samlens.train.loggers``)
    tensorboard/    with the ``tensorboard`` logger; ``wandb/`` and ``mlruns/`` with the W&B and MLflow ones
    running         present while a process trains the run (pid and host inside)
    .lock           an exclusive ``flock`` held by the process that trains the run
    failed          written instead of ``done`` when the run stops on an error (reason inside)
    done            written last, only after a complete run whose ``final`` record reads back

Files are written readable by the group and others (``0666 & ~umask``), so runs on a shared
cluster can be read by colleagues; nothing here holds secrets.

This module is the format only: it imports no config schema and no trainer, so readers of
run directories (reports, probes) and the writers of other artefacts stand on it alone.
Turning a run's config into its dataset and model lives in ``samlens.train.build``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from samlens.errors import ConfigError, SamlensError, StorageError

CONFIG = "config.yaml"
META = "meta.json"
RESULTS = "results.jsonl"
CHECKPOINT = "checkpoint.pt"
LOG = "train.log"
RUNNING = "running"
FAILED = "failed"
DONE = "done"
LOCK = ".lock"
TENSORBOARD = "tensorboard"
METRICS = "metrics.csv"
WANDB = "wandb"
MLFLOW = "mlruns"

STATUSES = ("done", "failed", "running", "pending")

# ``atomic_open`` names its temp files ``.<name>.<random>.tmp``; a process killed while
# writing one (SIGKILL, power loss) leaves it behind.
_TEMP_GLOB = ".*.tmp"


class RunBusy(ConfigError):
    """Another process holds the run directory's lock (it is training that run)."""


class ResultsUnreadable(SamlensError):
    """``results.jsonl`` does not read back a record that was just appended."""


def file_mode() -> int:
    """``0666 & ~umask``: the mode ``open()`` gives new files, unlike ``mkstemp``'s 0600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def storage_error(path: str | os.PathLike[str], err: OSError, kept: str) -> StorageError:
    """One line for a failed write: the path, the reason (ENOSPC, EROFS, EACCES, ...) and what is
    intact (``kept``)."""
    code = errno_name(err)
    reason = f"{err.strerror or err}" + (f" ({code})" if code else "")
    return StorageError(f"cannot write {str(path)!r}: {reason}; {kept}")


def errno_name(err: OSError) -> str:
    return errno.errorcode.get(err.errno, "") if err.errno else ""


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temp file next to ``path``; it replaces ``path`` only if the block succeeds.

    A write that fails for the disk (full, read-only, no permission) removes the temp file and
    raises a one-line :class:`StorageError`; ``path`` keeps its previous content.
    """
    path = Path(path)
    kept = f"the previous {path.name} is unchanged" if path.exists() else "nothing was written"
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise storage_error(path, err, kept) from None
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except StorageError:
        Path(tmp).unlink(missing_ok=True)
        raise
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise storage_error(path, err, kept) from None
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


def move_into_place(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Atomically replace ``dst`` with ``src``, a file written completely elsewhere on the same
    filesystem (a report's staging folder): readers see the old file or the new one, never half."""
    os.replace(src, dst)


def remove_stale_temp_files(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Delete temp files of interrupted atomic writes; call only while holding the run's lock."""
    removed = []
    for tmp in Path(run_dir).glob(_TEMP_GLOB):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


# ---------------------------------------------------------------------------------------
# results.jsonl

Scalar = str | int | float | bool | None


def flatten_tree(tree: Mapping[str, Any], prefix: str = "", *, keep_empty: bool = False) -> dict[str, Any]:
    """``{"optim": {"rho": 0.05}}`` → ``{"optim.rho": 0.05}``: one dotted key per leaf, leaves as they are.

    Keys of an ``options`` mapping come sorted (free-form, their order means nothing). An empty
    mapping is dropped, or kept as a leaf with ``keep_empty`` (an override that sets it).
    """
    out: dict[str, Any] = {}
    keys = sorted(tree, key=str) if prefix.endswith("options.") else list(tree)
    for key in keys:
        value, dotted = tree[key], f"{prefix}{key}"
        if isinstance(value, Mapping) and (value or not keep_empty):
            out.update(flatten_tree(value, f"{dotted}.", keep_empty=keep_empty))
        else:
            out[dotted] = value
    return out


def flatten(tree: Mapping[str, Any]) -> dict[str, Scalar]:
    """A nested config mapping as one scalar per dotted key (``{"optim.rho": 0.05, ...}``).

    The form in which every results record carries its run's config: lists and other
    containers become their JSON text, so every value is a scalar.
    """
    return {
        key: v if v is None or isinstance(v, (str, int, float, bool)) else json.dumps(v, sort_keys=True)
        for key, v in flatten_tree(tree).items()
    }


def _is_record(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def _repair_tail(fd: int, complete: Callable[[bytes], bool] = _is_record) -> None:
    """Make the file end on a line boundary before an append.

    A write cut short (power loss, a full disk) leaves a last line without its newline; an
    append would glue the next line onto it and both would be unreadable. A tail that is
    ``complete`` (a whole record) only lacks its newline; anything else is cut off.
    """
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    data = os.pread(fd, size, 0)
    start = data.rfind(b"\n") + 1
    if not complete(data[start:]):
        os.ftruncate(fd, start)
        return
    _write_all(fd, b"\n")


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def append_result(run_dir: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one JSON line to ``results.jsonl``, under an exclusive lock of the file, so
    concurrent appends (a probe next to a report) never interleave, and always on a new line."""
    line = (json.dumps(record, sort_keys=False, allow_nan=True) + "\n").encode()
    # A cut-short append leaves a torn last line, which readers skip and the next append repairs.
    append_lines(Path(run_dir) / RESULTS, lambda empty: line, "every earlier record is intact")


def append_lines(
    path: str | os.PathLike[str],
    lines: Callable[[bool], bytes],
    kept: str,
    complete: Callable[[bytes], bool] = _is_record,
) -> None:
    """Append ``lines(empty)`` (whole lines; ``empty``: the file holds nothing yet, so a header may
    lead) to ``path`` under an exclusive ``flock``, after repairing a torn tail (``complete`` says
    whether an unterminated last line is whole). A failed write is a one-line ``StorageError``."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
    except OSError as err:
        raise storage_error(path, err, kept) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _repair_tail(fd, complete)
        _write_all(fd, lines(os.fstat(fd).st_size == 0))
        os.fsync(fd)
    except OSError as err:
        raise storage_error(path, err, kept) from None
    finally:
        os.close(fd)  # releases the lock


def read_results(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All events of a run, in order; a torn last line (killed mid-write) is ignored."""
    path = Path(run_dir) / RESULTS
    if not path.exists():
        return []
    records = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def has_final(run_dir: str | os.PathLike[str], step: int) -> bool:
    """True when ``results.jsonl`` reads back a ``final`` record at ``step``."""
    return any(r.get("event") == "final" and r.get("step") == step for r in read_results(run_dir))


def read_meta(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """A run's ``meta.json``; ``{}`` when it is missing or not valid JSON (a damaged file)."""
    path = Path(run_dir) / META
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}


def is_done(run_dir: str | os.PathLike[str]) -> bool:
    return (Path(run_dir) / DONE).exists()


def is_failed(run_dir: str | os.PathLike[str]) -> bool:
    return (Path(run_dir) / FAILED).exists()


# ---------------------------------------------------------------------------------------
# the run lock


class RunLock:
    """An exclusive, non-blocking ``flock`` on ``<run_dir>/.lock`` for the training process.

    The kernel drops the lock when the process dies, however it dies, so a killed run never
    leaves a stale lock (unlike the ``running`` marker, which only says who held it).
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.path = Path(run_dir) / LOCK
        self._fd: int | None = None

    def acquire(self, patience_s: float = 0.5) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        # ``is_locked`` holds a shared lock for an instant; a short retry keeps a status check
        # from turning a run away, while a process that trains the run holds it for good.
        deadline = time.monotonic() + patience_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
            os.close(fd)
            run_dir = self.path.parent
            raise RunBusy(
                f"run directory {str(run_dir)!r} is being trained by another process{_holder(run_dir)}"
            ) from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(run_dir: Path) -> str:
    try:
        info = json.loads((run_dir / RUNNING).read_text())
        return f" (pid {int(info['pid'])} on {info['host']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def is_locked(run_dir: str | os.PathLike[str]) -> bool:
    """True while some process holds the run's lock (never takes it for longer than a probe)."""
    path = Path(run_dir) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


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

    ``running`` means a process holds the run's lock. The ``running`` marker decides only
    for runs without a lock file: those written on another host count as running, those of
    this host while their process is alive; a stale marker (killed run) counts as ``pending``.
    """
    run_dir = Path(run_dir)
    if (run_dir / DONE).exists():
        return "done"
    if (run_dir / FAILED).exists():
        return "failed"
    if is_locked(run_dir):
        return "running"
    marker = run_dir / RUNNING
    if marker.exists():
        try:
            info = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            return "running"
        if info.get("host") != socket.gethostname():
            return "running"
        if (run_dir / LOCK).exists():
            return "pending"  # lock file present but free: its holder died
        return "running" if _pid_alive(int(info.get("pid", -1))) else "pending"
    return "pending"


# ---------------------------------------------------------------------------------------
# checkpoints


def _numpy_globals() -> list[Any]:
    """What a checkpoint written before RNG states were stored as tensors needs: numpy
    arrays and dtypes (plain data; nothing in them calls code)."""
    import numpy as np

    reconstruct = getattr(getattr(np, "_core", None), "multiarray", None)
    reconstruct = getattr(reconstruct, "_reconstruct", None) or np.core.multiarray._reconstruct
    return [reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def load_checkpoint(run_dir: str | os.PathLike[str], map_location: str = "cpu") -> dict[str, Any] | None:
    """The latest checkpoint dict of a run, or None if it has none yet.

    Loaded with ``weights_only=True``: tensors, numbers, strings and containers only, so a
    crafted file cannot run code. A file that is not such a checkpoint (truncated, random,
    empty, or carrying other objects) raises a one-line ``ConfigError``.
    """
    import torch

    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for a damaged file
        raise ConfigError(f"cannot load checkpoint {str(path)!r}: {error_line(err)}") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise ConfigError(f"cannot load checkpoint {str(path)!r}: not a samlens checkpoint")
    return ckpt


def error_line(err: BaseException) -> str:
    """One line naming what went wrong while loading or applying a checkpoint."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if "Weights only load failed" in text or "Unsupported global" in str(err):
        return "it holds objects other than tensors, numbers and strings, refused for safety"
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__
