"""Provenance recorded in ``meta.json``: code version, packages, device, seeds."""

from __future__ import annotations

import platform
import socket
import subprocess
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from samlens.optim import examples_per_perturbation, perturbs
from samlens.train.config import ExperimentConfig, config_hash, derive_seed, process_batch_size
from samlens.train.scheduler import current_job

PACKAGES = ("samlens", "torch", "torchvision", "numpy", "scikit-learn")


def git_state(path: Path | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the checkout holding the code."""
    where = path or Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=where, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit.strip(), "dirty": None if status is None else bool(status.strip())}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = torch.__version__ if name == "torch" else metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"type": device.type, "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
    else:
        info["name"] = platform.processor() or platform.machine()
    return info


def collect_meta(**extra: Any) -> dict[str, Any]:
    """The common provenance fields plus ``extra`` (seeds, world size, ...); ``jobs`` holds the
    scheduler job this process runs under, if any (a resumed run adds its later jobs)."""
    job = current_job()
    return {
        "git": git_state(),
        "packages": package_versions(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "jobs": [job] if job else [],
        **extra,
    }


def run_meta(
    cfg: ExperimentConfig,
    optimizer: torch.optim.Optimizer,
    dataset: Any,
    *,
    device: torch.device,
    threads: int,
    world_size: int,
    steps_per_epoch: int,
    total_steps: int,
) -> dict[str, Any]:
    """A training run's ``meta.json``: the common fields, its seeds, layout and ascent."""
    perturbing = perturbs(cfg.optim.name)
    m = examples_per_perturbation(process_batch_size(cfg, world_size), world_size, optimizer=optimizer)
    return collect_meta(
        # Made once, at the first start: experiment trackers know a resumed run by it (samlens.train.loggers).
        run_id=uuid.uuid4().hex[:16],
        config_hash=config_hash(cfg),
        device=device_info(device),
        threads=threads,
        seeds={"train.seed": cfg.train.seed, "derived": derive_seed(cfg)},
        world_size=world_size,
        ascent="per_device" if perturbing else None,
        examples_per_perturbation=m if perturbing else None,
        group_names=list(dataset.group_names),
        attribute_names=list(dataset.attribute_names),
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
    )
