"""What a run reports while it trains: ``results.jsonl`` records, the log, and the scalars its
loggers (``train.loggers``: TensorBoard, CSV, W&B, MLflow; ``samlens.train.loggers``) receive."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from samlens import rundir
from samlens.train import loggers
from samlens.train.config import ExperimentConfig, TrainConfig, flatten_config


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


class TqdmHandler(logging.StreamHandler):
    """Log lines on the terminal through ``tqdm.write``: a progress bar on the same stream is lifted
    out of the way and redrawn below the line, instead of the line being glued onto the bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:
            self.handleError(record)


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
        sh = TqdmHandler(sys.stderr)
        sh.setFormatter(fmt)
        logger.addHandler(sh)
    return logger


def close_log(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)


def run_loggers(train: TrainConfig) -> list[str]:
    """The loggers a run opens: ``train.loggers``, and ``tensorboard`` for ``train.tensorboard``."""
    return loggers.selected(train.loggers, train.tensorboard)


def check_loggers(train: TrainConfig) -> None:
    """Each logger's package is there: say so, in one line, before anything is written."""
    loggers.check(run_loggers(train))


class EventWriter:
    """Appends a run's events; an event already recorded at a step (before a resume) is kept,
    so a resumed run writes each of its events once. Only the writing process records, and only
    it opens loggers: every event it records, and every ``log_step``, goes to them too."""

    def __init__(self, run_dir: Path, flat: dict[str, Any], *, writes: bool) -> None:
        self.run_dir, self.flat, self.writes = run_dir, flat, writes
        self.seen = {(r.get("event"), r.get("step")) for r in rundir.read_results(run_dir)}
        self.metric_loggers = loggers.RunLoggers({})

    def open_loggers(self, names: list[str], *, name: str, start_step: int, log: logging.Logger) -> None:
        """Open ``names`` for a run (re)starting at ``start_step``; none on a process that does not write."""
        if self.writes and names:
            info = loggers.RunInfo(self.run_dir, name, self.flat, start_step)
            self.metric_loggers = loggers.RunLoggers.open(names, info, log)

    def emit(
        self, event: str, step: int, epoch: int, metrics: dict[str, Any], *, dedupe: bool = True
    ) -> None:
        if not self.writes or (dedupe and (event, step) in self.seen):
            return
        self.seen.add((event, step))
        rundir.append_result(self.run_dir, record(event, step, epoch, metrics, self.flat))
        self.metric_loggers.log_scalars(loggers.event_scalars(event, metrics), step, epoch)

    def log_step(self, step: int, epoch: int, loss: float, lr: float) -> None:
        """The training loss so far this epoch and the learning rate, every ``train.log_every`` steps."""
        if self.writes:
            self.metric_loggers.log_scalars({"train/loss": loss, "train/lr": lr}, step, epoch)

    def close(self, outcome: str = "done") -> None:
        self.metric_loggers.close(outcome)
