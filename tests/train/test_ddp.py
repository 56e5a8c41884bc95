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


# The run both sides of the pair share; the data set's name is the tiny one's, added where it is imported.
PAIR = {
    "model.name": "mlp",
    "model.options": {"hidden": [8]},
    "optim.name": "sgd",
    "train.epochs": 2,
    "train.deterministic": True,
    "probe.enabled": False,
}

PAIR_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {here!r})
    import torch
    torch.set_num_threads(1)
    from train_tiny_data import NAME
    from samlens.train.config import load_config
    from samlens.train.runner import run_experiment
    cfg = load_config(overrides={{**{pair!r}, "data.name": NAME, "data.global_batch_size": 16}})
    run_experiment(cfg, {out!r}, quiet=True)
    import os
    sys.stdout.flush()
    os._exit(0)
    """
)


def test_a_global_batch_splits_across_processes_and_seeds_like_one_process():
    from samlens.errors import ConfigError
    from samlens.train.config import derive_seed, load_config, process_batch_size

    one = load_config(overrides={"data.batch_size": 16})
    shared = load_config(overrides={"data.global_batch_size": 16, "data.batch_size": 4})
    other = load_config(overrides={"data.batch_size": 8})
    assert derive_seed(shared) == derive_seed(one) != derive_seed(other)
    assert [process_batch_size(shared, w) for w in (1, 2, 4, 16)] == [16, 8, 4, 1]
    assert process_batch_size(one, 2) == 16  # without the option, batch_size is per process
    message = "^data.global_batch_size 16 does not split evenly across 3 processes$"
    with pytest.raises(ConfigError, match=message):
        process_batch_size(shared, 3)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_two_process_run_at_a_global_batch_pairs_with_the_one_process_run(tmp_path):
    """SGD on an MLP: the mean of two 8-example shard gradients is the 16-example gradient, so the
    paired one-process run follows the same trajectory (up to float summation order)."""
    sys.path.insert(0, str(HERE))
    from train_tiny_data import NAME

    from samlens.rundir import read_results
    from samlens.train.config import load_config
    from samlens.train.runner import run_experiment

    out = tmp_path / "ddp"
    script = tmp_path / "pair.py"
    script.write_text(PAIR_SCRIPT.format(here=str(HERE), out=str(out), pair=PAIR))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", str(script)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    one = load_config(overrides={**PAIR, "data.name": NAME, "data.batch_size": 16})
    ref = run_experiment(one, tmp_path / "one", quiet=True)
    meta = [json.loads((d / "meta.json").read_text()) for d in (out, ref)]
    assert meta[0]["world_size"] == 2 and meta[0]["seeds"]["derived"] == meta[1]["seeds"]["derived"]
    a, b = read_results(out), read_results(ref)
    assert [(e["event"], e["step"]) for e in a] == [(e["event"], e["step"]) for e in b]
    for x, y in zip(a, b):
        for key, value in y["metrics"].items():
            assert x["metrics"][key] == pytest.approx(value, abs=1e-5), key
