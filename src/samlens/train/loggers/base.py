"""The logging hook: what a metric logger is, the registry of them by name, and the fan-out a run
writes through.

A run hands every logger the same scalars: ``train/loss`` and ``train/lr`` every ``train.log_every``
steps, and ``<event>/<key>`` for each numeric metric of an event it records in ``results.jsonl``
(``eval``, ``probe``, ``final``). ``results.jsonl`` stays the record of a run; loggers are views.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from samlens import rundir
from samlens.errors import ConfigError, SamlensError
from samlens.registry import Registry

#: How a run ended, as ``close`` hears it.
OUTCOMES = ("done", "failed", "stopped")


class MetricLogger(Protocol):
    """One backend: receives scalars by step, and is closed once however the run ends."""

    def log_scalars(self, scalars: Mapping[str, float], step: int, epoch: int) -> None: ...

    def close(self, outcome: str) -> None: ...


@dataclass(frozen=True)
class RunInfo:
    """What a logger is opened with. ``start_step`` is the step a resumed run restarts from (0 on a
    first start): steps after it may have been logged before the interruption and come again."""

    run_dir: Path
    name: str
    config: Mapping[str, rundir.Scalar] = field(default_factory=dict)
    start_step: int = 0

    @property
    def run_id(self) -> str:
        """One id per run directory, the same on every resume: from ``meta.json``'s ``run_id`` (made
        once, at the first start), or, for a run made before it had one, from the directory's path."""
        made = rundir.read_meta(self.run_dir).get("run_id")
        if isinstance(made, str) and made:
            return made
        return hashlib.sha256(str(self.run_dir.resolve()).encode()).hexdigest()[:16]


class LoggerFactory(Protocol):
    """A registered logger: ``check()`` before anything is written (its package is there), then
    ``factory(info)`` opens it."""

    def __call__(self, info: RunInfo) -> MetricLogger: ...

    def check(self) -> None: ...


LOGGERS: Registry[LoggerFactory] = Registry("logger")


def register_logger(name: str) -> Callable[[Any], Any]:
    """``@register_logger("name")`` on a class taking a ``RunInfo`` and having a ``check`` static method."""
    return LOGGERS.register(name)


def selected(names: Iterable[str], tensorboard: bool = False) -> list[str]:
    """The loggers a run opens: ``train.loggers`` in order, with ``tensorboard`` added for the older
    ``train.tensorboard: true``."""
    out = list(dict.fromkeys(names))
    if tensorboard and "tensorboard" not in out:
        out.append("tensorboard")
    return out


def check(names: Iterable[str]) -> None:
    """Every named logger is known and its package importable: a one-line ``ConfigError`` otherwise."""
    for name in names:
        LOGGERS.get(name).check()


def event_scalars(event: str, metrics: Mapping[str, Any]) -> dict[str, float]:
    """An event's numeric metrics as ``<event>/<key>`` scalars (a failure's reason, text, is not one)."""
    return {
        f"{event}/{key}": float(value)
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


class RunLoggers:
    """The loggers of one run, written to as one.

    A backend that fails while logging (a tracking server gone, a quirk of its client) is reported
    once in the run's log and dropped: logging never stops a run. A ``SamlensError`` (a full disk
    under ``metrics.csv``) is the run's own problem and stops it, as a failed ``results.jsonl``
    append does.
    """

    def __init__(self, loggers: Mapping[str, MetricLogger], log: logging.Logger | None = None) -> None:
        self.loggers = dict(loggers)
        self.log = log or logging.getLogger(__name__)

    @classmethod
    def open(cls, names: Iterable[str], info: RunInfo, log: logging.Logger | None = None) -> RunLoggers:
        """Open each of ``names``; one that cannot start (a tracking URI that does not answer) is a
        one-line ``ConfigError`` naming it, and the ones opened before it are closed."""
        opened = cls({}, log)
        try:
            for name in names:
                try:
                    opened.loggers[name] = LOGGERS.get(name)(info)
                except SamlensError:
                    raise
                except Exception as err:
                    raise ConfigError(
                        f"cannot start the {name} logger: {type(err).__name__}: {_first_line(err)}"
                    ) from None
        except BaseException:
            opened.close("failed")
            raise
        return opened

    def log_scalars(self, scalars: Mapping[str, float], step: int, epoch: int) -> None:
        if not scalars:
            return
        for name, logger in list(self.loggers.items()):
            try:
                logger.log_scalars(scalars, step, epoch)
            except SamlensError:
                raise
            except Exception as err:
                self.log.warning(f"logger {name} stopped: {type(err).__name__}: {_first_line(err)}")
                self.loggers.pop(name)
                _close_quietly(logger, "failed")

    def close(self, outcome: str) -> None:
        """Close every logger once; one that fails to close does not keep the others open."""
        loggers, self.loggers = self.loggers, {}
        for logger in loggers.values():
            _close_quietly(logger, outcome)


def _close_quietly(logger: MetricLogger, outcome: str) -> None:
    # A backend's flush may fail as the run ends; its files are then as complete as they get.
    with contextlib.suppress(Exception):
        logger.close(outcome)


def _first_line(err: BaseException) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0][:200] if lines else ""
