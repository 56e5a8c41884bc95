"""Loggers that write files into the run directory: ``tensorboard`` and ``csv``."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from pathlib import Path

from samlens import rundir
from samlens._optional import MissingDependencyError, missing_message
from samlens.train.loggers.base import RunInfo, register_logger


@register_logger("tensorboard")
class TensorBoardLogger:
    """Event files under ``<run_dir>/tensorboard``; ``tensorboard --logdir runs`` shows every run."""

    @staticmethod
    def check() -> None:
        try:
            from torch.utils import tensorboard  # noqa: F401
        except ImportError:  # torch raises a plain ImportError of its own, which ``require`` leaves alone
            raise MissingDependencyError(missing_message("tensorboard", "tensorboard")) from None

    def __init__(self, info: RunInfo) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # On a resume, TensorBoard drops what the earlier process wrote after the checkpoint: those
        # steps are trained, and logged, again.
        purge = info.start_step + 1 if info.start_step else None
        self.writer = SummaryWriter(str(info.run_dir / rundir.TENSORBOARD), purge_step=purge)

    def log_scalars(self, scalars: Mapping[str, float], step: int, epoch: int) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, step)

    def close(self, outcome: str) -> None:
        self.writer.close()


HEADER = ("step", "epoch", "key", "value")


def _never_whole(line: bytes) -> bool:
    """Every row is written whole with its newline, so an unterminated last line is a write cut
    short, however whole it looks (``0.12`` may be the start of ``0.125``): it is cut off."""
    return False


def read_metrics(run_dir: str | os.PathLike[str]) -> list[dict[str, object]]:
    """The rows of ``<run_dir>/metrics.csv`` as dicts (``step``/``epoch`` ints, ``value`` a float);
    a torn last row is skipped. ``pandas.read_csv`` reads the same file."""
    path = Path(run_dir) / rundir.METRICS
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")[1:-1]  # the header, and what follows the last newline (b"" or torn)
    rows = []
    for row in csv.reader(line.decode(errors="replace") for line in lines):
        try:
            step, epoch, key, value = row
            rows.append({"step": int(step), "epoch": int(epoch), "key": key, "value": float(value)})
        except ValueError:  # not a row of this table (edited by hand): skipped, as readers of results do
            continue
    return rows


@register_logger("csv")
class CsvLogger:
    """``<run_dir>/metrics.csv``, one ``step,epoch,key,value`` row per scalar (a long table: new keys
    need no new column; ``df.pivot_table(index="step", columns="key", values="value")`` makes it
    wide). ``epoch`` counts completed epochs, as in ``results.jsonl``.

    Appended like ``results.jsonl``: under a lock, a torn last row repaired, never interleaved. A
    scalar already written at a step (before a resume) is kept, so a resumed run writes each row once.
    """

    @staticmethod
    def check() -> None:
        pass

    def __init__(self, info: RunInfo) -> None:
        self.path = info.run_dir / rundir.METRICS
        self.seen = {(r["step"], r["key"]) for r in read_metrics(info.run_dir)}

    def log_scalars(self, scalars: Mapping[str, float], step: int, epoch: int) -> None:
        new = [(key, value) for key, value in scalars.items() if (step, key) not in self.seen]
        if not new:
            return
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        for key, value in new:
            writer.writerow((step, epoch, key, repr(float(value))))
        body = text.getvalue().encode()
        header = (",".join(HEADER) + "\n").encode()
        kept = "every earlier row is intact"
        rundir.append_lines(self.path, lambda empty: header + body if empty else body, kept, _never_whole)
        self.seen.update((step, key) for key, _ in new)

    def close(self, outcome: str) -> None:
        pass
