"""What a run reports while it trains: ``results.jsonl`` records, the log and TensorBoard scalars."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from samlens import rundir
from samlens.errors import ConfigError
from samlens.train.config import ExperimentConfig, flatten_config


def now() -> str:
    """UTC time of an event, as every record and marker file states it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"


def record(
    event: str, step: int, epoch: int, metrics: dict[str, Any], flat: dict[str, Any]
) -> dict[str, Any]:
    """One ``results.jsonl`` record; ``flat`` is the run's flattened config."""
    return {"event": event, "step": step, "epoch": epoch, "time": now(), "metrics": metrics, "config": flat}


def probe_record(cfg: ExperimentConfig, step: int, epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
    """A ``results.jsonl`` record for a probe made after training (``samlens probe``)."""
    return record("probe", step, epoch, metrics, flatten_config(cfg))


class _LogFile(logging.FileHandler):
    """train.log: a line that cannot be written (full disk) is dropped without logging's traceback;
    the run's next checkpoint or results write then stops it with one line naming the path."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def open_log(run_dir: Path | None, quiet: bool, name: str) -> logging.Logger:
    """A logger writing to ``<run_dir>/train.log`` (when given) and, unless ``quiet``, stderr."""
    logger = logging.getLogger(f"samlens.run.{name}.{id(run_dir)}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    fmt = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
    if run_dir is not None:
        fh = _LogFile(run_dir / rundir.LOG)
        fh.setFormatter(fmt)
        logger.addHandler(fh)
    if not quiet:
        sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(fmt)
        logger.addHandler(sh)
    return logger


def close_log(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)


def check_tensorboard() -> None:
    """``train.tensorboard`` needs its package: say so before anything is written."""
    try:
        from torch.utils import tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError(
            "train.tensorboard needs the tensorboard package (pip install samlens[tensorboard])"
        ) from None


class EventWriter:
    """Appends a run's events; an event already recorded at a step (before a resume) is kept,
    so a resumed run writes each of its events once. Only the writing process records."""

    def __init__(self, run_dir: Path, flat: dict[str, Any], *, writes: bool) -> None:
        self.run_dir, self.flat, self.writes = run_dir, flat, writes
        self.seen = {(r.get("event"), r.get("step")) for r in rundir.read_results(run_dir)}
        self.tb: Any = None

    def open_tensorboard(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(self.run_dir / rundir.TENSORBOARD))

    def emit(
        self, event: str, step: int, epoch: int, metrics: dict[str, Any], *, dedupe: bool = True
    ) -> None:
        if not self.writes or (dedupe and (event, step) in self.seen):
            return
        self.seen.add((event, step))
        rundir.append_result(self.run_dir, record(event, step, epoch, metrics, self.flat))
        if self.tb is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.tb.add_scalar(f"{event}/{key}", value, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
