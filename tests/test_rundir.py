"""Run-directory primitives: appends after a torn line, file modes, the run lock, checkpoints."""

import json
import os
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from samlens import rundir
from samlens.errors import ConfigError

HOLD_LOCK = (
    "import sys; from samlens.rundir import RunLock; RunLock(sys.argv[1]).acquire(); "
    "print('locked', flush=True); sys.stdin.read()"
)


@contextmanager
def lock_held_by_other_process(run_dir: Path):
    """A second process takes the run's lock and holds it until the block ends."""
    run_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


def test_append_after_torn_line_starts_a_new_line(tmp_path):
    rundir.append_result(tmp_path, {"event": "eval", "step": 1})
    with open(tmp_path / rundir.RESULTS, "a") as fh:
        fh.write('{"event": "eval", "st')  # killed mid-write
    rundir.append_result(tmp_path, {"event": "final", "step": 2})
    text = (tmp_path / rundir.RESULTS).read_text()
    assert text.endswith("\n")
    assert [json.loads(line) for line in text.splitlines()] == [
        {"event": "eval", "step": 1},
        {"event": "final", "step": 2},
    ]


def test_append_keeps_a_complete_record_that_only_lacks_its_newline(tmp_path):
    (tmp_path / rundir.RESULTS).write_text('{"event": "eval", "step": 1}')
    rundir.append_result(tmp_path, {"event": "final", "step": 1})
    assert [r["event"] for r in rundir.read_results(tmp_path)] == ["eval", "final"]
    assert rundir.has_final(tmp_path, 1) and not rundir.has_final(tmp_path, 2)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_get_the_mode_open_would_give(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        rundir.atomic_write_text(tmp_path / "meta.json", "{}\n")
        rundir.atomic_save(tmp_path / "checkpoint.pt", lambda fh: torch.save({"model": {}}, fh))
        rundir.append_result(tmp_path, {"event": "eval"})
    finally:
        os.umask(old)
    for name in ("meta.json", "checkpoint.pt", rundir.RESULTS):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_stale_temp_files_are_removed(tmp_path):
    (tmp_path / ".checkpoint.pt.abc123.tmp").write_bytes(b"partial")
    (tmp_path / ".meta.json.x1.tmp").write_text("{")
    (tmp_path / "checkpoint.pt").write_bytes(b"kept")
    removed = rundir.remove_stale_temp_files(tmp_path)
    assert sorted(p.name for p in removed) == [".checkpoint.pt.abc123.tmp", ".meta.json.x1.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_lock_is_exclusive_across_processes_and_released_with_its_holder(tmp_path):
    run_dir = tmp_path / "run"
    with lock_held_by_other_process(run_dir):
        assert rundir.is_locked(run_dir) and rundir.run_status(run_dir) == "running"
        with pytest.raises(rundir.RunBusy, match="being trained by another process"):
            rundir.RunLock(run_dir).acquire()
    assert not rundir.is_locked(run_dir) and rundir.run_status(run_dir) == "pending"
    with rundir.RunLock(run_dir):
        assert rundir.is_locked(run_dir)
    assert not rundir.is_locked(run_dir)


def test_crafted_pickle_checkpoint_is_refused_and_its_payload_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    (tmp_path / "run").mkdir()
    write_crafted_checkpoint(tmp_path / "run" / rundir.CHECKPOINT, marker)
    with pytest.raises(ConfigError, match="refused for safety"):
        rundir.load_checkpoint(tmp_path / "run")
    assert not marker.exists()


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_crafted_checkpoint(path: Path, marker: Path) -> None:
    """A checkpoint whose unpickling would run ``touch marker``."""
    torch.save({"model": {"w": _Payload(marker)}, "step": 0}, path)


@pytest.mark.parametrize("content", [b"", b"\x00garbage\xff" * 10, "truncated", {"step": 3}])
def test_damaged_checkpoints_raise_one_line_config_error(tmp_path, content):
    path = tmp_path / rundir.CHECKPOINT
    if content == "truncated":
        torch.save({"model": {"w": torch.zeros(1000)}}, path)
        path.write_bytes(path.read_bytes()[:300])
    elif isinstance(content, dict):
        torch.save(content, path)
    else:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        rundir.load_checkpoint(tmp_path)
    assert "cannot load checkpoint" in str(info.value) and "\n" not in str(info.value)


def test_a_status_check_in_progress_does_not_turn_the_trainer_away(tmp_path):
    import fcntl
    import threading

    # is_locked() holds a shared lock for an instant; the trainer must wait that out.
    (tmp_path / rundir.LOCK).write_text("")
    fd = os.open(tmp_path / rundir.LOCK, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    threading.Timer(0.1, os.close, args=(fd,)).start()
    with rundir.RunLock(tmp_path):
        assert rundir.is_locked(tmp_path)
