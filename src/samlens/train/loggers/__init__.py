"""Metric loggers by name (``train.loggers``): ``tensorboard``, ``csv``, ``wandb``, ``mlflow``.

``samlens.train.loggers.base`` holds the hook (``MetricLogger``, ``RunLoggers``) and the registry;
a new backend is a class under ``@register_logger("<name>")`` with a ``check`` static method (its
package is importable: a one-line error otherwise) and a constructor taking a ``RunInfo``.
"""

from samlens.train.loggers import files, tracking  # noqa: F401  (they register on import)
from samlens.train.loggers.base import (
    LOGGERS,
    MetricLogger,
    RunInfo,
    RunLoggers,
    check,
    event_scalars,
    register_logger,
    selected,
)
from samlens.train.loggers.files import read_metrics

__all__ = [
    "LOGGERS",
    "MetricLogger",
    "RunInfo",
    "RunLoggers",
    "check",
    "event_scalars",
    "read_metrics",
    "register_logger",
    "selected",
]
