"""A reader of a run directory while its run appends to it: every read is a whole prefix of what
was written, never a half-written line, and status never fails."""

from __future__ import annotations

import subprocess
import sys

from samlens.rundir import read_results, run_status

WRITER = """
import sys
from samlens.rundir import append_result
for i in range({n}):
    append_result({run_dir!r}, {{"event": "eval", "step": i, "metrics": {{"pad": "x" * 5000, "i": i}}}})
"""


def test_reads_during_appends_see_whole_records_only(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    n = 1500
    writer = subprocess.Popen([sys.executable, "-c", WRITER.format(n=n, run_dir=str(run_dir))])
    seen, partial = 0, 0
    try:
        while writer.poll() is None or seen < n:
            records = read_results(run_dir)
            assert [r["step"] for r in records] == list(range(len(records)))
            assert all(r["metrics"]["i"] == r["step"] and len(r["metrics"]["pad"]) == 5000 for r in records)
            assert len(records) >= seen  # appends only: a later read never sees fewer
            seen = len(records)
            partial += 0 < seen < n
            assert run_status(run_dir) in ("pending", "running")
            if writer.poll() is not None and seen < n:
                seen = len(read_results(run_dir))
                break
    finally:
        writer.wait(timeout=120)
    assert writer.returncode == 0 and len(read_results(run_dir)) == n
    assert partial > 0  # some reads really happened while the writer was mid-way
