"""The floor and ceiling of a reproduction: reference runs beside the grid's own.

For every point of the grid trained with a plain optimizer (SGD, or Adam for DomainBed):

* **floor** — the same config's network at its initialisation (same architecture and derived
  seed, hence the same weights the trained runs start from), evaluated and probed exactly as a
  finished run is, without any training step. Written by :func:`write_floor` as a run directory
  (``config.yaml``, ``meta.json``, one ``final`` event whose recorded config carries
  ``headroom: floor``, ``done``) under ``<out>/floor/``.
* **ceiling** — the same training with ``data.options.shuffle_easy: true`` (the easy block
  shuffled across training examples, so only the hard feature predicts the label), an ordinary
  run under ``<out>/ceiling/``; only for datasets with that option (the offline stand-ins).

``samlens.report.headroom`` recognises both and places every optimizer between them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from samlens import rundir
from samlens.optim import perturbs
from samlens.report.roles import FLOOR_MARK, HARD_ONLY_KEY
from samlens.train.config import (
    ExperimentConfig,
    config_from_dict,
    config_hash,
    config_to_dict,
    derive_seed,
    dump_config,
    flatten_config,
)

FLOOR_DIR = "floor"
CEILING_DIR = "ceiling"


def is_baseline(cfg: ExperimentConfig) -> bool:
    return not perturbs(cfg.optim.name)


def ceiling_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """``cfg`` trained on the hard-only data (the easy block shuffled across train examples)."""
    data = config_to_dict(cfg)
    option = HARD_ONLY_KEY.rsplit(".", 1)[-1]
    data["data"]["options"] = {**data["data"]["options"], option: True}
    data["name"] = f"{cfg.name}-ceiling"
    return config_from_dict(data)


def floor_dir(out: Path, cfg: ExperimentConfig) -> Path:
    return out / FLOOR_DIR / config_hash(cfg)


def ceiling_dir(out: Path, cfg: ExperimentConfig) -> Path:
    return out / CEILING_DIR / config_hash(cfg)


def floor_metrics(cfg: ExperimentConfig, device: torch.device | str = "cpu") -> dict[str, float]:
    """Evaluation and probe metrics of ``cfg``'s untrained network, with the run's BatchNorm policy."""
    from samlens.train.build import build_dataset, build_model
    from samlens.train.evaluate import evaluate
    from samlens.train.probing import make_prober

    device = torch.device(device)
    dataset = build_dataset(cfg)
    model = build_model(cfg, dataset).to(device)
    metrics = evaluate(model, dataset, device=device, bn_stats=cfg.train.bn_stats)
    prober = make_prober(cfg, dataset, device)
    if prober is not None:
        metrics.update(prober(model, 0) or {})
    return metrics


def run_task(
    config: dict[str, Any], run_dir: str, threads: int | None = None, imports: tuple[str, ...] = ()
) -> str:
    """What every launcher runs for a reproduction: a floor directory is probed untrained, any
    other point trained by the sweep's ``run_point``; so floors run where the grid runs (a SLURM
    job, a Ray worker), not on the submitting host."""
    from samlens.train.reproducibility import torch_threads
    from samlens.train.sweep import point_config, run_point

    if Path(run_dir).parent.name != FLOOR_DIR:
        return run_point(config, run_dir, threads, imports)
    cfg = point_config(config, run_dir, imports)
    with torch_threads(threads or 1):
        write_floor(cfg, Path(run_dir))
    return "done"


def write_floor(cfg: ExperimentConfig, run_dir: Path) -> dict[str, Any]:
    """Probe the untrained network of ``cfg`` into ``run_dir`` (skipped when already done).

    Returns the final metrics. ``done`` is written last, so an interrupted floor is redone.
    """
    from samlens.train.meta import collect_meta

    if rundir.is_done(run_dir):
        finals = [e for e in rundir.read_results(run_dir) if e.get("event") == "final"]
        return dict(finals[-1]["metrics"]) if finals else {}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / rundir.RESULTS).unlink(missing_ok=True)  # a half-written earlier attempt
    dump_config(cfg, run_dir / rundir.CONFIG)
    meta = collect_meta(
        config_hash=config_hash(cfg),
        seeds={"train.seed": cfg.train.seed, "derived": derive_seed(cfg)},
        headroom="floor: untrained network, no optimizer step",
    )
    rundir.atomic_write_text(run_dir / rundir.META, json.dumps(meta, indent=2) + "\n")
    metrics = floor_metrics(cfg)
    record = {
        "event": "final",
        "step": 0,
        "epoch": 0,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "metrics": metrics,
        "config": {**flatten_config(cfg), FLOOR_MARK: "floor"},
    }
    rundir.append_result(run_dir, record)
    rundir.atomic_write_text(run_dir / rundir.DONE, record["time"] + "\n")
    return metrics
