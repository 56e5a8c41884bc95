"""Loggers that feed an experiment tracker, each an optional extra: ``wandb`` and ``mlflow``.

Both stay on this machine unless told otherwise: W&B runs offline and MLflow writes a file store
inside the run directory. Both find their run again on a resume through the run's id
(``RunInfo.run_id``), so a resumed run continues one tracked run instead of starting another.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping

from samlens import rundir
from samlens._optional import require
from samlens.train.loggers.base import RunInfo, register_logger


@register_logger("wandb")
class WandbLogger:
    """Weights & Biases in offline mode (unless ``WANDB_MODE`` says otherwise): no network call; the
    run's files go to ``<run_dir>/wandb``, and ``wandb sync <run_dir>/wandb/offline-run-*`` uploads
    them later. ``WANDB_PROJECT`` names the project (default ``samlens``)."""

    @staticmethod
    def check() -> None:
        with require("wandb"):
            import wandb  # noqa: F401

    def __init__(self, info: RunInfo) -> None:
        mode = os.environ.get("WANDB_MODE") or "offline"
        if mode in ("offline", "disabled"):
            # Offline means offline: no crash reports either (W&B sends them unless told not to).
            os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
        import wandb

        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or "samlens",
            name=info.name,
            id=info.run_id,
            resume="allow",
            dir=str(info.run_dir),
            mode=mode,
            config=dict(info.config),
            # train.log keeps the run's output; W&B capturing the terminal would also record the bar.
            settings=wandb.Settings(console="off"),
        )

    def log_scalars(self, scalars: Mapping[str, float], step: int, epoch: int) -> None:
        self.run.log(dict(scalars), step=step)

    def close(self, outcome: str) -> None:
        self.run.finish(exit_code=0 if outcome == "done" else 1)


# MLflow accepts letters, digits, and ``_ - . /`` and space in metric and parameter names.
_MLFLOW_UNSAFE = re.compile(r"[^\w\-. /]")
_MLFLOW_STATUS = {"done": "FINISHED", "failed": "FAILED", "stopped": "KILLED"}
_RUN_TAG = "samlens.run_id"


@register_logger("mlflow")
class MlflowLogger:
    """MLflow, into a file store at ``<run_dir>/mlruns`` unless ``MLFLOW_TRACKING_URI`` names a
    tracking server or store; ``MLFLOW_EXPERIMENT_NAME`` names the experiment (default ``samlens``).
    The run's flattened config becomes its parameters; ``mlflow ui --backend-store-uri
    <run_dir>/mlruns`` shows it."""

    @staticmethod
    def check() -> None:
        with require("mlflow"):
            from mlflow.tracking import MlflowClient  # noqa: F401

    def __init__(self, info: RunInfo) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            uri = (info.run_dir / rundir.MLFLOW).resolve().as_uri()
            # MLflow 3 refuses file stores unless allowed; a store of one run, next to it, is the point here.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        # A client of its own, not mlflow.set_tracking_uri: runs trained in one process (a sweep)
        # each keep their own store, and the caller's MLflow state is left alone.
        self.client = MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "samlens"
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        found = self.client.search_runs(
            [experiment_id], filter_string=f"tags.`{_RUN_TAG}` = '{info.run_id}'", max_results=1
        )
        self.seen: set[tuple[str, int]] = set()
        if found:
            self.run_id = found[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            # MLflow keeps every value logged at a step; one logged before the resume is kept, as in
            # metrics.csv, so the replayed steps after the checkpoint do not appear twice.
            for key in found[0].data.metrics:
                self.seen.update((key, m.step) for m in self.client.get_metric_history(self.run_id, key))
            return
        tags = {_RUN_TAG: info.run_id, "samlens.run_dir": str(info.run_dir)}
        self.run_id = self.client.create_run(experiment_id, run_name=info.name, tags=tags).info.run_id
        params = [Param(_safe(k), str(v)[:500]) for k, v in info.config.items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def log_scalars(self, scalars: Mapping[str, float], step: int, epoch: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        named = {_safe(key): float(value) for key, value in scalars.items()}
        metrics = [Metric(k, v, now, step) for k, v in named.items() if (k, step) not in self.seen]
        for i in range(0, len(metrics), 1000):  # and at most 1000 metrics
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])
        self.seen.update((m.key, step) for m in metrics)

    def close(self, outcome: str) -> None:
        self.client.set_terminated(self.run_id, _MLFLOW_STATUS.get(outcome, "FAILED"))


def _safe(name: str) -> str:
    return _MLFLOW_UNSAFE.sub("_", name)
