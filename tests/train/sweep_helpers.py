"""Stand-in run functions for launcher tests; module-level so spawned workers can import them."""

from __future__ import annotations

import time
from pathlib import Path

#: A 2-point grid of real runs on the tiny dataset (``train_tiny_data``), a few seconds each.
TINY = {
    "base": {
        "name": "tiny",
        "data": {"name": "tiny_test_blobs", "batch_size": 64, "options": {"n": 256}},
        "model": {"name": "mlp", "options": {"hidden": [8]}},
        "optim": {"lr": 0.1},
        "train": {"epochs": 2, "log_every": 4, "deterministic": True},
    },
    "imports": ["train_tiny_data"],
    "grid": {"train.seed": [0, 1]},
}


def wait_for_file_run(config: dict, run_dir: str, threads: int | None, imports: tuple[str, ...]) -> str:
    """Finish at once, or (``config["wait_for"]``) only once that file exists (60 s at most)."""
    wait_for = config.get("wait_for")
    deadline = time.monotonic() + 60
    while wait_for and not Path(wait_for).exists():
        if time.monotonic() > deadline:
            return "timed out"
        time.sleep(0.05)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / "done").write_text("")
    return "done"


def threads_run(config: dict, run_dir: str, threads: int | None, imports: tuple[str, ...]) -> str:
    """Reports the thread count the launcher handed to the run."""
    return f"threads={threads}"
