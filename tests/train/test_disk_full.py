"""A full, read-only or forbidden disk: the write fails with one line naming the path, what was
written before stays intact and readable, and a later resume gives the uninterrupted results."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
import torch
from test_runner import _strip, tiny_cfg

from samlens import rundir
from samlens.errors import StorageError
from samlens.rundir import load_checkpoint, read_results, run_status
from samlens.train.runner import run_experiment

CODES = [errno.ENOSPC, errno.EROFS, errno.EACCES]


def _disk_error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


@pytest.mark.parametrize("code", CODES)
def test_a_failed_checkpoint_write_keeps_the_previous_one_and_resumes(tmp_path, monkeypatch, code):
    cfg = tiny_cfg(**{"train.checkpoint_every": 3})
    ref = run_experiment(cfg, tmp_path / "ref", quiet=True)
    run_dir = tmp_path / "run"
    real = torch.save

    def save(obj, fh, *args, **kwargs):
        if obj.get("step") == 6:
            fh.write(b"the first bytes of a checkpoint")
            raise _disk_error(code)
        return real(obj, fh, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", save)
        with pytest.raises(StorageError) as info:
            run_experiment(cfg, run_dir, quiet=True)
    message = str(info.value)
    assert "\n" not in message and str(run_dir / rundir.CHECKPOINT) in message
    assert errno.errorcode[code] in message and "previous checkpoint.pt is unchanged" in message
    assert load_checkpoint(run_dir)["step"] == 4  # the previous checkpoint (end of epoch 1) loads
    assert not list(run_dir.glob(".*.tmp"))
    assert [e["step"] for e in read_results(run_dir)] == [4]
    assert run_status(run_dir) == "pending"
    run_experiment(cfg, run_dir, quiet=True)
    assert (run_dir / "done").exists() and _strip(read_results(run_dir)) == _strip(read_results(ref))


@pytest.mark.parametrize("code", CODES)
def test_a_failed_results_append_keeps_every_earlier_record(tmp_path, monkeypatch, code):
    cfg = tiny_cfg()
    ref = run_experiment(cfg, tmp_path / "ref", quiet=True)
    run_dir = tmp_path / "run"
    real = rundir._write_all
    calls = []

    def write_all(fd, data):
        calls.append(data)
        if b'"step": 8' in data:  # the second eval record: half of it lands, then the disk is full
            real(fd, data[: len(data) // 2])
            raise _disk_error(code)
        return real(fd, data)

    with monkeypatch.context() as patch:
        patch.setattr(rundir, "_write_all", write_all)
        with pytest.raises(
            StorageError, match=r"cannot write .*results\.jsonl.*every earlier record is intact"
        ):
            run_experiment(cfg, run_dir, quiet=True)
    assert [e["step"] for e in read_results(run_dir)] == [4]  # the torn half-line is not a record
    run_experiment(cfg, run_dir, quiet=True)
    assert (run_dir / "done").exists() and _strip(read_results(run_dir)) == _strip(read_results(ref))


def test_a_full_disk_is_one_line_and_exit_2_on_the_command_line(tmp_path, monkeypatch, capsys):
    import yaml

    from samlens.cli.main import main
    from samlens.train.config import config_to_dict

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(config_to_dict(tiny_cfg())))

    def full(obj, fh, *args, **kwargs):
        raise _disk_error(errno.ENOSPC)

    monkeypatch.setattr(torch, "save", full)
    rc = main(["run", "--config", str(config), "--run_dir", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "No space left on device (ENOSPC)" in err[0] and "checkpoint.pt" in err[0]


def test_atomic_write_into_a_read_only_place_is_one_storage_error(tmp_path, monkeypatch):
    target = tmp_path / "meta.json"
    target.write_text("old")

    def read_only(*args, **kwargs):
        raise _disk_error(errno.EROFS)

    monkeypatch.setattr(rundir.tempfile, "mkstemp", read_only)
    with pytest.raises(StorageError, match=r"Read-only file system \(EROFS\); the previous meta.json"):
        rundir.atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert isinstance(StorageError("x"), OSError)  # `except OSError` callers still catch it


def test_a_failed_report_write_leaves_the_previous_report(reported_copy, monkeypatch):
    from samlens.report import write_report

    before = (reported_copy / "report.md").read_text()
    real = Path.write_text

    def full(self, text, *args, **kwargs):
        if self.name == "report.md":
            raise _disk_error(errno.ENOSPC)
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(StorageError, match="previous report, if any, is unchanged"):
        write_report(reported_copy)
    assert (reported_copy / "report.md").read_text() == before
    assert not list(reported_copy.glob(".report-*"))  # no staging folder left behind


def test_a_feature_cache_on_a_full_disk_is_one_storage_error(tmp_path, monkeypatch):
    import numpy as np

    from samlens.probe.features import Features, save_features

    feats = Features(np.zeros((2, 3), np.float32), np.array([0, 1]), np.array([0, 1]), np.array([0, 3]))

    def full(*args, **kwargs):
        raise _disk_error(errno.ENOSPC)

    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(StorageError, match=r"cache\.npz.*ENOSPC"):
        save_features(feats, tmp_path / "cache.npz")
    assert not list(tmp_path.iterdir())


@pytest.fixture
def reported_copy(tmp_path):
    """A finished tiny run with its report, copied so the test may damage it."""
    from samlens.report import write_report

    run_dir = run_experiment(tiny_cfg(**{"train.epochs": 1}), tmp_path / "run", quiet=True)
    write_report(run_dir)
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    return copy
