"""Stand-in run functions for launcher tests; module-level so spawned workers can import them."""

from __future__ import annotations

import time
from pathlib import Path


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
