"""`torchrun --nproc_per_node 2 -m samlens run`: every rank exits 0 after rank 0 wrote `done`, only
rank 0 prints, and the epoch's train metrics count every process's examples."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import yaml

from samlens.train.checkpoint import TrainState
from samlens.train.distributed import DistContext
from samlens.train.runner import epoch_train_metrics


class _TwoRanks(DistContext):
    """A stand-in for two processes: the other rank saw ``other`` (loss sum, correct, examples)."""

    def __init__(self, other: tuple[float, float, float]) -> None:
        super().__init__(rank=0, world_size=2)
        self.other = torch.tensor(other, dtype=torch.float64)

    def all_sum(self, value: torch.Tensor) -> torch.Tensor:
        return value + self.other


def test_epoch_train_metrics_count_every_rank():
    state = TrainState.start(torch.device("cpu"))
    state.add_batch(torch.tensor(0.5), torch.tensor(30), 32)  # rank 0: loss sum 16, 30/32 right
    single = epoch_train_metrics(state, DistContext())
    assert single == {"train_loss": 0.5, "train_acc": 30 / 32}
    both = epoch_train_metrics(state, _TwoRanks((48.0, 2.0, 32.0)))  # rank 1: loss 1.5, 2/32 right
    assert both == {"train_loss": (16 + 48) / 64, "train_acc": 32 / 64}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_torchrun_two_processes_exit_clean_three_times_in_a_row(tmp_path):
    config = {
        "name": "ddp",
        "data": {"name": "mnist5k_dominoes", "batch_size": 32},
        "model": {"name": "small_cnn", "options": {"width": 4}},
        "optim": {"name": "sam", "rho": 0.05, "lr": 0.05},
        "train": {"epochs": 1},
        "probe": {"enabled": True},  # the final probe is what rank 1 used to outrun
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    for attempt in range(3):
        run_dir = tmp_path / f"run{attempt}"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        cmd += ["-m", "samlens", "run", "--config", str(path), "--run_dir", str(run_dir), "--quiet"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.strip().splitlines() == [str(run_dir)]  # rank 0 speaks, once
        assert (run_dir / "done").exists()
        final = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()][-1]
        assert final["event"] == "final" and "probe_acc_label" in final["metrics"]
        assert json.loads((run_dir / "meta.json").read_text())["world_size"] == 2
