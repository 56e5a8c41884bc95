"""Grid plugin for the SLURM stand-in tests: on a job's first start, the run waits at step
``SAMLENS_TEST_PAUSE_AT`` (after writing its pid to ``SAMLENS_TEST_PAUSE_MARKER``) until a signal
has been recorded, so the test's signal lands at a known step of a real submitit job."""

from __future__ import annotations

import os
import time
from pathlib import Path

import train_tiny_data  # noqa: F401  (registers the dataset)

from samlens.train import runner

AT = os.environ.get("SAMLENS_TEST_PAUSE_AT")

if AT and os.environ.get("SLURM_RESTART_COUNT", "0") == "0" and not getattr(runner, "_paused", False):
    runner._paused = True
    real_step = runner._Run.train_step

    def train_step(self, x, y):
        real_step(self, x, y)
        if self.state.step + 1 == int(AT) and self.writes:
            Path(os.environ["SAMLENS_TEST_PAUSE_MARKER"]).write_text(str(os.getpid()))
            deadline = time.monotonic() + 120
            while self.stop_request is not None and self.stop_request.signum is None:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)

    runner._Run.train_step = train_step
