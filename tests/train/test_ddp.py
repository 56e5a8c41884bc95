import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from samlens.train.distributed import SINGLE_RUN_THREADS, available_cores

HERE = Path(__file__).resolve().parent

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {here!r})
    import torch
    torch.set_num_threads(1)
    from train_tiny_data import NAME
    from samlens.train.config import load_config
    from samlens.train.runner import run_experiment
    cfg = load_config(overrides={{"data.name": NAME, "data.batch_size": 8, "model.name": "mlp",
                                 "model.options": {{"hidden": [8]}}, "optim.name": "sam",
                                 "train.epochs": 2, "probe.enabled": False}})
    run_experiment(cfg, {out!r}, quiet=True)
    import os
    sys.stdout.flush()
    os._exit(0)  # skip interpreter finalisation: gloo's threads can abort a process that is done
    """
)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_process_gloo_run(tmp_path):
    out = tmp_path / "run"
    script = tmp_path / "ddp.py"
    script.write_text(SCRIPT.format(here=str(HERE), out=str(out)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", str(script)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "done").exists()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["world_size"] == 2 and meta["ascent"] == "per_device"
    assert meta["examples_per_perturbation"] == 8
    # Two processes on this machine share its cores.
    assert meta["threads"] == min(SINGLE_RUN_THREADS, max(1, available_cores() // 2))
    events = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    # 64 examples, 8 per device x 2 devices: 4 steps per epoch; only rank 0 writes (no duplicates)
    assert [(e["event"], e["step"]) for e in events] == [("eval", 4), ("eval", 8), ("final", 8)]
