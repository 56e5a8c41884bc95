"""Preemption: SIGTERM (what SLURM and most schedulers send before they kill a job) and SIGINT
stop a run at its next step boundary, after a checkpoint, instead of wherever the signal lands.

The handler only records the signal, so a checkpoint being written when it arrives is finished
first; the run then saves its state at the next step boundary and raises :class:`Preempted`
(neither ``done`` nor ``failed``: the same command resumes it). A second Ctrl-C stops at once.

Under SLURM, SIGUSR2 is caught the same way: it is the signal sent ahead of a job's time limit
(``--signal=USR2@90``, as the slurm launcher submits), so a time-out checkpoints like a preemption.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from samlens.errors import Preempted
from samlens.train.scheduler import TIME_LIMIT_SIGNAL, under_slurm

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """The signal that asked the run to stop (None until one arrives)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # Ctrl-C twice: the user does not want to wait for the step
        self.signum = signum

    def stop(self, step: int) -> Preempted:
        name = signal.Signals(self.signum).name if self.signum is not None else "a signal"
        return Preempted(
            f"stopped by {name} at step {step} after writing its checkpoint; run the same command "
            "again to resume",
            signum=self.signum or signal.SIGTERM,
        )


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Record SIGTERM/SIGINT (and SIGUSR2 under SLURM) in the yielded request while the block runs,
    then restore the previous handlers. Outside the main thread (where Python cannot install
    handlers) nothing is caught."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    caught = SIGNALS + ((TIME_LIMIT_SIGNAL,) if under_slurm() else ())
    previous = {s: signal.signal(s, request._handle) for s in caught}
    try:
        yield request
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
