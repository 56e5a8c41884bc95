import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from samlens.cli.main import main
from samlens.train.config import load_config
from samlens.train.runner import run_experiment

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_tiny_data import NAME  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cfg = load_config(
        overrides={
            "data.name": NAME,
            "data.batch_size": 16,
            "model.name": "mlp",
            "model.options": {"hidden": [8]},
            "train.epochs": 1,
            "probe.enabled": False,
        }
    )
    return run_experiment(cfg, tmp_path_factory.mktemp("runs") / "run", quiet=True)


def test_probe_appends_event_and_prints_table(trained, capsys):
    before = (trained / "results.jsonl").read_text().splitlines()
    assert main(["probe", str(trained), "--method", "balanced"]) == 0
    out = capsys.readouterr().out
    assert "probe_acc_label" in out and "probe_acc_other" in out
    lines = (trained / "results.jsonl").read_text().splitlines()
    assert lines[: len(before)] == before and len(lines) == len(before) + 1
    event = json.loads(lines[-1])
    assert event["event"] == "probe" and event["method"] == "balanced" and event["step"] == 4
    assert 0 <= event["metrics"]["probe_acc_label"] <= 1


def test_probe_bad_inputs(tmp_path, capsys):
    assert main(["probe", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not a run directory" in err and "\n" not in err
    with pytest.raises(SystemExit) as info:
        main(["probe", str(tmp_path), "--method", "nope"])
    assert info.value.code == 2


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def trained_copy(trained, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    return run_dir


@pytest.mark.parametrize("damage", ["crafted", "truncated", "random", "empty"])
def test_probe_of_bad_checkpoint_is_one_line_exit_2(trained_copy, tmp_path, capsys, damage):
    ckpt = trained_copy / "checkpoint.pt"
    marker = tmp_path / "payload-ran"
    if damage == "crafted":
        torch.save({"model": {"w": _Payload(marker)}, "step": 4}, ckpt)
    elif damage == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    else:
        ckpt.write_bytes(os.urandom(4096) if damage == "random" else b"")
    before = (trained_copy / "results.jsonl").read_text()
    assert main(["probe", str(trained_copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("samlens probe: error: cannot load checkpoint") and "\n" not in err
    assert not marker.exists() and (trained_copy / "results.jsonl").read_text() == before


def test_probe_of_unfinished_run_is_refused(trained_copy, capsys):
    (trained_copy / "done").unlink()
    before = (trained_copy / "results.jsonl").read_text()
    assert main(["probe", str(trained_copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not done (no 'done' marker)" in err and "\n" not in err
    assert (trained_copy / "results.jsonl").read_text() == before
