"""SIGTERM / SIGINT to a real training process: it checkpoints at the next step boundary, exits
128 + signal with one line, is neither done nor failed, and resumes to the uninterrupted results."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_runner import _strip, tiny_cfg

from samlens.errors import Preempted
from samlens.rundir import load_checkpoint, read_results, run_status
from samlens.train.config import config_to_dict
from samlens.train.preemption import stop_on_signals
from samlens.train.runner import run_experiment

HERE = Path(__file__).resolve().parent

CHILD = """
import os, signal, sys
sys.path.insert(0, {here!r})
import torch
import train_tiny_data  # noqa: F401  (registers the dataset)
from samlens.cli.main import main
from samlens.train import runner

SIG = getattr(signal, {sig!r})
real_step, real_save = runner._Run.train_step, torch.save
sent = []

def train_step(self, x, y):
    real_step(self, x, y)
    if {where!r} == "step" and self.state.step + 1 == {at} and not sent:
        sent.append(1)
        os.kill(os.getpid(), SIG)  # delivered mid-epoch, between this step's update and the next

def save(obj, fh, *args, **kwargs):
    if {where!r} == "save" and obj.get("step") == {at} and not sent:
        sent.append(1)
        os.kill(os.getpid(), SIG)  # delivered while the checkpoint is being written
    return real_save(obj, fh, *args, **kwargs)

runner._Run.train_step = train_step
torch.save = save
sys.exit(main(["run", "--config", {config!r}, "--run_dir", {out!r}, "--quiet"]))
"""


def _preempt(tmp_path: Path, cfg, sig: str, where: str, at: int) -> subprocess.CompletedProcess:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(config_to_dict(cfg)))
    out = tmp_path / "run"
    script = CHILD.format(here=str(HERE), sig=sig, where=where, at=at, config=str(config), out=str(out))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "sig, where, at, stopped_at",
    [("SIGTERM", "step", 6, 6), ("SIGINT", "step", 6, 6), ("SIGTERM", "save", 3, 3)],
)
def test_a_signal_checkpoints_stops_and_resumes_to_the_same_results(tmp_path, sig, where, at, stopped_at):
    cfg = tiny_cfg(**{"train.checkpoint_every": 3})  # 4 steps per epoch: step 6 is mid-epoch
    ref = run_experiment(cfg, tmp_path / "ref", quiet=True)
    proc = _preempt(tmp_path, cfg, sig, where, at)
    assert proc.returncode == 128 + getattr(signal, sig), proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"stopped by {sig} at step {stopped_at}" in lines[0], proc.stderr
    run_dir = tmp_path / "run"
    assert load_checkpoint(run_dir)["step"] == stopped_at
    assert run_status(run_dir) == "pending"  # resumable: neither done nor failed
    assert not (run_dir / "done").exists() and not (run_dir / "failed").exists()
    run_experiment(cfg, run_dir, quiet=True)
    assert (run_dir / "done").exists()
    assert _strip(read_results(run_dir)) == _strip(read_results(ref))
    assert "preempted" in (run_dir / "train.log").read_text()


def test_preempted_crosses_a_process_boundary_intact():
    import pickle

    err = pickle.loads(pickle.dumps(Preempted("stopped by SIGTERM at step 3", signum=signal.SIGTERM)))
    assert isinstance(err, Preempted) and err.signum == signal.SIGTERM and str(err).startswith("stopped")


def test_handlers_are_restored_and_a_second_ctrl_c_stops_at_once():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with stop_on_signals() as request:
        signal.raise_signal(signal.SIGTERM)
        assert request.signum == signal.SIGTERM  # recorded, the process lives on
        request.signum = None
        signal.raise_signal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_results_of_a_preempted_run_hold_no_extra_line(tmp_path):
    cfg = tiny_cfg(**{"train.checkpoint_every": 3})
    _preempt(tmp_path, cfg, "SIGTERM", "step", 6)
    events = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["eval"]  # epoch 1's; nothing about the stop
