import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_tiny_data import NAME

from samlens import rundir
from samlens.errors import ConfigError
from samlens.rundir import CHECKPOINT, load_checkpoint, read_results, run_status
from samlens.train import runner
from samlens.train.build import load_run
from samlens.train.config import config_to_dict, flatten_config, load_config
from samlens.train.runner import run_experiment

HERE = Path(__file__).resolve().parent


def tiny_cfg(**overrides):
    base = {
        "name": "tiny",
        "data.name": NAME,
        "data.batch_size": 16,
        "model.name": "mlp",
        "model.options": {"hidden": [8]},
        "optim.lr": 0.1,
        "train.epochs": 3,
        "train.log_every": 2,
        "train.deterministic": True,
        "probe.enabled": False,
    }
    base.update(overrides)
    return load_config(overrides=base)


class Interrupt(Exception):
    pass


def test_run_writes_complete_directory(tmp_path):
    cfg = tiny_cfg()
    run_dir = run_experiment(cfg, tmp_path / "run", quiet=True)
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.yaml", "meta.json", "results.jsonl", CHECKPOINT, "train.log", "done"} <= names
    assert "running" not in names and "failed" not in names
    assert run_status(run_dir) == "done"
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["world_size"] == 1 and meta["seeds"]["train.seed"] == 0
    assert set(meta["git"]) == {"commit", "dirty"} and meta["packages"]["torch"] == torch.__version__
    events = read_results(run_dir)
    assert [e["event"] for e in events] == ["eval", "eval", "eval", "final"]
    assert [e["step"] for e in events] == [4, 8, 12, 12]  # 64 examples / 16 per batch = 4 steps per epoch
    for e in events:
        assert e["config"] == flatten_config(cfg)
    final = events[-1]["metrics"]
    for key in ("train_loss", "test_acc", "val_acc", "worst_group_acc", "train_weighted_mean_acc"):
        assert 0 <= final[key] <= 10
    groups = [k for k in final if k.startswith("group_acc/")]
    assert sorted(groups) == [f"group_acc/{g}" for g in range(4)]
    assert final["worst_group_acc"] == min(final[g] for g in groups)
    # load_run gives back the trained weights
    cfg2, model, dataset = load_run(run_dir)
    assert cfg2 == cfg and dataset.name == NAME
    ckpt = load_checkpoint(run_dir)
    for k, v in model.state_dict().items():
        assert torch.equal(v, ckpt["model"][k])
    # a finished run is skipped: nothing is appended
    run_experiment(cfg, run_dir, quiet=True)
    assert len(read_results(run_dir)) == len(events)


def test_probe_events(tmp_path):
    cfg = tiny_cfg(**{"probe.enabled": True, "probe.every": 2, "train.epochs": 2})
    events = read_results(run_experiment(cfg, tmp_path / "probe", quiet=True))
    assert [(e["event"], e["step"]) for e in events] == [("eval", 4), ("eval", 8), ("probe", 8), ("final", 8)]
    final, probe = events[-1]["metrics"], events[-2]["metrics"]
    for key in ("probe_acc_label", "probe_acc_other"):
        assert 0 <= probe[key] <= 1 and final[key] == probe[key]
    assert "test_acc" in final


def _interrupt_at(k):
    def hook(step):
        if step == k:
            raise Interrupt

    return hook


@pytest.mark.parametrize("checkpoint_every, stop", [(0, 6), (3, 7)])
def test_resume_is_bit_identical(tmp_path, checkpoint_every, stop):
    cfg = tiny_cfg(**{"train.checkpoint_every": checkpoint_every, "optim.weight_decay": 1e-3})
    ref = run_experiment(cfg, tmp_path / "ref", quiet=True)
    resumed = tmp_path / "resumed"
    with pytest.raises(Interrupt):
        run_experiment(cfg, resumed, step_hook=_interrupt_at(stop), quiet=True)
    assert run_status(resumed) == "pending" and not (resumed / "done").exists()
    run_experiment(cfg, resumed, quiet=True)
    a, b = load_checkpoint(ref), load_checkpoint(resumed)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    for key in sa:
        assert torch.equal(sa[key]["momentum_buffer"], sb[key]["momentum_buffer"])
    strip = lambda events: [(e["event"], e["step"], e["metrics"]) for e in events]  # noqa: E731
    assert strip(read_results(ref)) == strip(read_results(resumed))


def test_sgd_and_sam_like_runs_share_init_and_data(tmp_path):
    # Same train.seed, different optimizer settings: identical initial weights.
    from samlens.train.build import build_dataset, build_model

    a, b = tiny_cfg(), tiny_cfg(**{"optim.lr": 0.01, "optim.momentum": 0.0})
    ma, mb = build_model(a, build_dataset(a)), build_model(b, build_dataset(b))
    for (ka, va), (_, vb) in zip(ma.state_dict().items(), mb.state_dict().items()):
        assert torch.equal(va, vb), ka
    c = tiny_cfg(**{"train.seed": 1})
    mc = build_model(c, build_dataset(c))
    assert not torch.equal(ma.head.weight, mc.head.weight)


def test_nan_loss_marks_failed(tmp_path):
    cfg = tiny_cfg(**{"optim.lr": 1e30, "optim.momentum": 0.0, "data.options": {"scale": 1e6}})
    run_dir = run_experiment(cfg, tmp_path / "nan", quiet=True)
    assert (run_dir / "failed").exists() and not (run_dir / "done").exists()
    assert run_status(run_dir) == "failed"
    events = read_results(run_dir)
    assert events[-1]["event"] == "failed"
    assert "loss is nan" in events[-1]["metrics"]["reason"] or "inf" in events[-1]["metrics"]["reason"]
    # rerunning does not retry or mark it done
    run_experiment(cfg, run_dir, quiet=True)
    assert not (run_dir / "done").exists() and len(read_results(run_dir)) == len(events)


def test_step_budget_and_schedules(tmp_path):
    cfg = tiny_cfg(**{"train.steps": 5, "train.schedule": "step", "train.epochs": 10})
    run_dir = run_experiment(cfg, tmp_path / "steps", quiet=True)
    events = read_results(run_dir)
    assert events[-1]["event"] == "final" and events[-1]["step"] == 5
    ckpt = load_checkpoint(run_dir)
    # step schedule after 5 of 5 steps: lr / 100
    assert ckpt["scheduler"]["_last_lr"][0] == pytest.approx(0.1 * 0.01)


def test_bf16_and_channels_last_run(tmp_path):
    cfg = tiny_cfg(**{"train.bf16": True, "train.channels_last": True, "train.epochs": 1})
    run_dir = run_experiment(cfg, tmp_path / "bf16", quiet=True)
    final = read_results(run_dir)[-1]
    assert final["event"] == "final" and 0 < final["metrics"]["train_loss"] < 10
    # weights stay float32 under autocast
    assert all(
        v.dtype == torch.float32 for v in load_checkpoint(run_dir)["model"].values() if v.is_floating_point()
    )


def test_tensorboard_scalars_match_results(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is part of samlens[all]")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = run_experiment(tiny_cfg(**{"train.tensorboard": True}), tmp_path / "tb", quiet=True)
    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    final = read_results(run_dir)[-1]
    scalars = acc.Scalars("final/test_acc")
    assert [s.step for s in scalars] == [final["step"]]
    assert scalars[0].value == pytest.approx(final["metrics"]["test_acc"], rel=1e-6)


def test_resume_is_bit_identical_with_sam(tmp_path):
    # SAM's checkpoint must carry the base optimizer's momentum and SAM's counters.
    cfg = tiny_cfg(**{"optim.name": "sam", "optim.rho": 0.1, "optim.options": {"interval": 2}})
    ref = run_experiment(cfg, tmp_path / "ref", quiet=True)
    resumed = tmp_path / "resumed"
    with pytest.raises(Interrupt):
        run_experiment(cfg, resumed, step_hook=_interrupt_at(5), quiet=True)
    run_experiment(cfg, resumed, quiet=True)
    a, b = load_checkpoint(ref), load_checkpoint(resumed)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["optimizer"]["sam"]["step_count"] == b["optimizer"]["sam"]["step_count"] > 5
    strip = lambda events: [(e["event"], e["step"], e["metrics"]) for e in events]  # noqa: E731
    assert strip(read_results(ref)) == strip(read_results(resumed))


# ---------------------------------------------------------------------------------------
# interruptions at the worst moments, damaged files, concurrent processes


def _strip(events):
    return [(e["event"], e["step"], e["metrics"]) for e in events]


def _kill_before(event_name):
    """Patch target for ``_Run.emit``: the process dies just before writing ``event_name``."""
    real = runner._Run.emit

    def emit(self, event, metrics, **kw):
        if event == event_name:
            raise Interrupt
        return real(self, event, metrics, **kw)

    return emit


@pytest.mark.parametrize("probe", [False, True])
def test_kill_between_last_checkpoint_and_final_event(tmp_path, monkeypatch, probe):
    cfg = tiny_cfg(**{"probe.enabled": probe, "train.epochs": 2})
    ref = run_experiment(cfg, tmp_path / "ref", quiet=True)
    killed = tmp_path / "killed"
    with monkeypatch.context() as patch:
        patch.setattr(runner._Run, "emit", _kill_before("final"))
        with pytest.raises(Interrupt):
            run_experiment(cfg, killed, quiet=True)
    assert load_checkpoint(killed)["step"] == 8 and not (killed / "done").exists()
    run_experiment(cfg, killed, quiet=True)
    assert (killed / "done").exists()
    assert _strip(read_results(killed)) == _strip(read_results(ref))
    assert {"train_loss", "train_acc"} <= set(read_results(killed)[-1]["metrics"])


KILL_IN_SAVE = """
import os, signal, sys
sys.path.insert(0, {here!r})
import torch
import train_tiny_data  # noqa: F401  (registers the dataset)
from samlens.train.config import config_from_dict
from samlens.train.runner import run_experiment

def dying_save(obj, fh, *args, **kwargs):
    fh.write(b"half a checkpoint")
    fh.flush()
    os.kill(os.getpid(), signal.SIGKILL)

torch.save = dying_save
run_experiment(config_from_dict({config!r}), {out!r}, quiet=True)
"""


def test_kill_inside_atomic_save_leaves_no_temp_file_after_resume(tmp_path):
    cfg = tiny_cfg()
    ref = run_experiment(cfg, tmp_path / "ref", quiet=True)
    run_dir = tmp_path / "killed"
    script = KILL_IN_SAVE.format(here=str(HERE), config=config_to_dict(cfg), out=str(run_dir))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert len(list(run_dir.glob(".checkpoint.pt.*.tmp"))) == 1  # what the kill left behind
    assert run_status(run_dir) == "pending"  # the kernel released the dead process's lock
    run_experiment(cfg, run_dir, quiet=True)
    assert not list(run_dir.glob(".*.tmp"))
    assert (run_dir / "done").exists() and _strip(read_results(run_dir)) == _strip(read_results(ref))


@pytest.mark.parametrize("kill", ["step", "final"])
def test_torn_last_line_does_not_swallow_the_next_record(tmp_path, monkeypatch, kill):
    cfg = tiny_cfg()
    ref = run_experiment(cfg, tmp_path / "ref", quiet=True)
    run_dir = tmp_path / "torn"
    with monkeypatch.context() as patch:
        if kill == "final":
            patch.setattr(runner._Run, "emit", _kill_before("final"))
        with pytest.raises(Interrupt):
            run_experiment(cfg, run_dir, step_hook=_interrupt_at(6) if kill == "step" else None, quiet=True)
    with open(run_dir / "results.jsonl", "a") as fh:
        fh.write('{"event": "eval", "step": 99, "metr')  # power loss mid-append
    run_experiment(cfg, run_dir, quiet=True)
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == read_results(run_dir)  # every line readable
    assert _strip(read_results(run_dir)) == _strip(read_results(ref))
    assert (run_dir / "done").exists()


def test_unreadable_final_record_is_not_marked_done(tmp_path, monkeypatch):
    cfg = tiny_cfg(**{"train.epochs": 1})
    ref = run_experiment(cfg, tmp_path / "ref", quiet=True)
    real = rundir.append_result

    def torn_final(run_dir, record):
        if record["event"] != "final":
            return real(run_dir, record)
        with open(Path(run_dir) / rundir.RESULTS, "a") as fh:
            fh.write(json.dumps(record)[:50])  # the disk kept only part of it

    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(rundir, "append_result", torn_final)
        with pytest.raises(rundir.ResultsUnreadable):
            run_experiment(cfg, run_dir, quiet=True)
    assert not (run_dir / "done").exists() and run_status(run_dir) == "pending"
    run_experiment(cfg, run_dir, quiet=True)  # the rerun writes the final record again
    assert (run_dir / "done").exists() and _strip(read_results(run_dir)) == _strip(read_results(ref))


OPTIMIZERS = [
    "sgd",
    "adam",
    "adamw",
    "sam",
    "asam",
    "asam_common",
    "lsam",
    "lsam_decomposed",
    "iw",
    "lr",
    "msam",
    "gsam",
    "wsam",
    "looksam",
    "fsam",
    "random_sam",
    "sam_on",
]
# SAM-ON perturbs normalisation layers only: it needs a model that has some.
_MODEL_FOR = {"sam_on": {"model.name": "small_cnn", "model.options": {"width": 2}}}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_resumes_from_a_weights_only_checkpoint(tmp_path, name):
    import samlens.optim

    assert sorted(OPTIMIZERS) == sorted(samlens.optim.list_optimizers())  # keep this list complete
    cfg = tiny_cfg(
        **{"optim.name": name, "train.epochs": 2, "train.checkpoint_every": 3, **_MODEL_FOR.get(name, {})}
    )
    ref = run_experiment(cfg, tmp_path / "ref", quiet=True)
    resumed = tmp_path / "resumed"
    with pytest.raises(Interrupt):
        run_experiment(cfg, resumed, step_hook=_interrupt_at(4), quiet=True)
    torch.load(resumed / CHECKPOINT, weights_only=True)  # plain data only
    run_experiment(cfg, resumed, quiet=True)
    a, b = load_checkpoint(ref), load_checkpoint(resumed)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert _strip(read_results(ref)) == _strip(read_results(resumed))


def test_checkpoint_with_numpy_rng_layout_still_resumes(tmp_path):
    # Checkpoints written before RNG states were stored as tensors held numpy arrays.
    import random

    import numpy as np

    cfg = tiny_cfg()
    ref = run_experiment(cfg, tmp_path / "ref", quiet=True)
    run_dir = tmp_path / "old"
    with pytest.raises(Interrupt):
        run_experiment(cfg, run_dir, step_hook=_interrupt_at(6), quiet=True)
    ckpt = load_checkpoint(run_dir)
    npy, py = ckpt["rng"]["numpy"], ckpt["rng"]["python"]
    keys = npy["keys"].numpy().astype(np.uint32)
    ckpt["rng"]["numpy"] = (npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    ckpt["rng"]["python"] = (py["version"], tuple(py["internal"]), py["gauss_next"])
    ckpt.pop("last_metrics")
    torch.save(ckpt, run_dir / CHECKPOINT)
    assert random.getstate()  # (the old layout is what random/numpy return)
    run_experiment(cfg, run_dir, quiet=True)
    assert _strip(read_results(run_dir)) == _strip(read_results(ref))


@pytest.mark.parametrize(
    "name, options, expected",
    [("sgd", {}, None), ("adamw", {}, None), ("sam", {}, 16), ("lsam", {}, 16), ("msam", {"m": 4}, 4)],
)
def test_meta_records_examples_per_perturbation(tmp_path, name, options, expected):
    cfg = tiny_cfg(**{"optim.name": name, "optim.options": options, "train.steps": 1})
    meta = json.loads((run_experiment(cfg, tmp_path / name, quiet=True) / "meta.json").read_text())
    assert meta["examples_per_perturbation"] == expected


def test_run_files_are_readable_by_the_group(tmp_path):
    old = os.umask(0o022)
    try:
        run_dir = run_experiment(tiny_cfg(**{"train.epochs": 1}), tmp_path / "run", quiet=True)
    finally:
        os.umask(old)
    for name in ("config.yaml", "meta.json", "done", CHECKPOINT, "results.jsonl", "train.log"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o644, name


def test_threads_are_set_for_the_run_recorded_and_restored(tmp_path):
    before = torch.get_num_threads()
    seen = []
    cfg = tiny_cfg(**{"train.steps": 1})
    run_dir = run_experiment(
        cfg, tmp_path / "run", quiet=True, threads=1, step_hook=lambda s: seen.append(torch.get_num_threads())
    )
    assert seen == [1] and torch.get_num_threads() == before
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["threads"] == 1 and meta["device"]["threads"] == 1


def test_checkpoint_of_another_shape_is_one_line_config_error(tmp_path):
    cfg = tiny_cfg(**{"train.epochs": 2})
    run_dir = tmp_path / "run"
    with pytest.raises(Interrupt):
        run_experiment(cfg, run_dir, step_hook=_interrupt_at(6), quiet=True)
    ckpt = load_checkpoint(run_dir)
    for broken in (
        {**ckpt, "model": {"w": torch.zeros(3)}},
        {k: v for k, v in ckpt.items() if k != "scheduler"},
    ):
        torch.save(broken, run_dir / CHECKPOINT)
        with pytest.raises(ConfigError) as info:
            run_experiment(cfg, run_dir, quiet=True)
        message = str(info.value)
        assert "\n" not in message and "delete it to train the run again from the start" in message
        assert not (run_dir / "done").exists() and not (run_dir / "running").exists()
