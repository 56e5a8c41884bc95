"""train.loggers: TensorBoard, CSV, W&B (offline) and MLflow (file store) read back against what the
run recorded; resumes write each scalar once; a missing package is one line; tqdm-aware log lines."""

from __future__ import annotations

import io
import json
import logging
import math
import os
import re
import signal
import struct
import sys
from pathlib import Path

import pytest
from test_runner import Interrupt, _interrupt_at, tiny_cfg

from samlens.errors import ConfigError, Preempted
from samlens.rundir import read_meta, read_results, run_status
from samlens.train import events
from samlens.train.config import config_hash, config_to_dict, config_to_yaml, flatten_config, load_config
from samlens.train.loggers import LOGGERS, RunInfo, read_metrics, register_logger
from samlens.train.runner import run_experiment
from samlens.train.schedule import lr_factor

STEPS = 12  # tiny_cfg: 3 epochs of 4 steps, train.log_every 2, optim.lr 0.1, cosine schedule
LOG_LINE = re.compile(r"step (\d+)/\d+ epoch \d+ loss ([\d.]+) lr")


def _scalars(run_dir: Path) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    out: dict[str, dict[int, float]] = {}
    for tag in acc.Tags()["scalars"]:
        points = acc.Scalars(tag)
        assert len({p.step for p in points}) == len(points), f"{tag} has a step twice"
        out[tag] = {p.step: p.value for p in points}
    return out


def _event_scalars(run_dir: Path) -> dict[tuple[int, str], float]:
    """(step, "<event>/<key>") -> value of every numeric metric results.jsonl holds."""
    return {
        (r["step"], f"{r['event']}/{k}"): v
        for r in read_results(run_dir)
        for k, v in r["metrics"].items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _csv(run_dir: Path) -> dict[tuple[int, str], float]:
    rows = read_metrics(run_dir)
    table = {(r["step"], r["key"]): r["value"] for r in rows}
    assert len(table) == len(rows), "a (step, key) row is written twice"
    return table


# ---------------------------------------------------------------------------------------
# config


def test_loggers_never_enter_the_hash_and_stay_out_of_a_default_config():
    plain = load_config()
    logged = load_config(overrides={"train.loggers": ["csv", "tensorboard", "csv"]})
    assert logged.train.loggers == ["csv", "tensorboard"]  # each once, in order
    assert config_hash(logged) == config_hash(plain)
    assert "loggers" not in config_to_dict(plain)["train"] and "loggers" not in config_to_yaml(plain)
    assert config_to_dict(logged)["train"]["loggers"] == ["csv", "tensorboard"]
    both = load_config(overrides={"train.loggers": ["csv"], "train.tensorboard": True})
    assert both.train.loggers == ["csv"] and events.run_loggers(both.train) == ["csv", "tensorboard"]
    # Records (and so reports) never tell runs apart by where they logged.
    assert flatten_config(logged) == flatten_config(plain) and "train.loggers" not in flatten_config(logged)


@pytest.mark.parametrize(
    "value, message",
    [
        (["nope"], r"^unknown train\.loggers 'nope'; valid choices: csv, mlflow, tensorboard, wandb$"),
        ("csv", r"^train\.loggers must be list\[str\], got 'csv'$"),
    ],
)
def test_an_unknown_or_malformed_logger_is_one_line(value, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides={"train.loggers": value})


def test_an_unknown_logger_on_the_command_line_is_one_line_and_exit_2(tmp_path, capsys):
    from samlens.cli.main import main

    rc = main(["run", "--train.loggers", "[csv, nope]", "--run_dir", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "unknown train.loggers 'nope'" in err[0]
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------
# TensorBoard and CSV


def test_tensorboard_logs_train_loss_and_lr_every_log_every_steps(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is part of samlens[all]")
    # train.tensorboard: true, the older switch, is the tensorboard logger
    run_dir = run_experiment(tiny_cfg(**{"train.tensorboard": True}), tmp_path / "tb", quiet=True)
    tb = _scalars(run_dir)
    logged = {int(m[1]): float(m[2]) for m in LOG_LINE.finditer((run_dir / "train.log").read_text())}
    assert sorted(tb["train/loss"]) == sorted(logged) == list(range(2, STEPS + 1, 2))
    for step, loss in logged.items():
        assert tb["train/loss"][step] == pytest.approx(loss, abs=5e-5)  # train.log has 4 decimals
        # the rate the next step uses: the cosine schedule's closed form after `step` steps
        expected = 0.1 * lr_factor("cosine", step, STEPS)
        assert tb["train/lr"][step] == pytest.approx(expected, rel=1e-6, abs=1e-9)
    recorded = _event_scalars(run_dir)
    assert {(s, k) for k, points in tb.items() if not k.startswith("train/") for s in points} == set(recorded)
    for (step, key), value in recorded.items():
        assert tb[key][step] == pytest.approx(value, rel=1e-6)


def test_csv_holds_the_per_step_scalars_and_every_recorded_metric(tmp_path):
    pd = pytest.importorskip("pandas")
    run_dir = run_experiment(tiny_cfg(**{"train.loggers": ["csv"]}), tmp_path / "csv", quiet=True)
    table = _csv(run_dir)
    recorded = _event_scalars(run_dir)
    assert {k: v for k, v in table.items() if not k[1].startswith("train/")} == recorded  # exactly
    assert sorted(s for s, k in table if k == "train/loss") == list(range(2, STEPS + 1, 2))
    assert sorted(s for s, k in table if k == "train/lr") == list(range(2, STEPS + 1, 2))
    frame = pd.read_csv(run_dir / "metrics.csv")
    assert list(frame.columns) == ["step", "epoch", "key", "value"] and len(frame) == len(table)
    wide = frame.pivot_table(index="step", columns="key", values="value")
    assert wide.loc[STEPS, "final/test_acc"] == read_results(run_dir)[-1]["metrics"]["test_acc"]
    epochs = {(r["step"], f"{r['event']}/test_acc"): r["epoch"] for r in read_results(run_dir)}
    assert all(frame.set_index(["step", "key"]).loc[k, "epoch"] == e for k, e in epochs.items())
    assert not (run_dir / "tensorboard").exists()  # only the loggers asked for


def test_a_resumed_run_writes_each_scalar_once(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is part of samlens[all]")
    cfg = tiny_cfg(**{"train.loggers": ["csv", "tensorboard"]})
    ref = run_experiment(cfg, tmp_path / "ref", quiet=True)
    resumed = tmp_path / "resumed"
    with pytest.raises(Interrupt):  # after step 6; the checkpoint is at step 4, so 5 and 6 come again
        run_experiment(cfg, resumed, step_hook=_interrupt_at(6), quiet=True)
    assert (6, "train/loss") in _csv(resumed)
    run_experiment(cfg, resumed, quiet=True)
    assert _csv(resumed) == _csv(ref)
    assert _scalars(resumed) == _scalars(ref)  # TensorBoard's purge drops the earlier process's step 6


def test_loggers_may_change_between_a_run_and_its_resume(tmp_path):
    cfg = tiny_cfg()
    run_dir = tmp_path / "run"
    with pytest.raises(Interrupt):
        run_experiment(cfg, run_dir, step_hook=_interrupt_at(6), quiet=True)
    run_experiment(tiny_cfg(**{"train.loggers": ["csv"]}), run_dir, quiet=True)  # the same run
    assert (run_dir / "done").exists() and min(s for s, _ in _csv(run_dir)) == 6


# ---------------------------------------------------------------------------------------
# W&B and MLflow


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No tracker talks to a server, and none writes outside tmp_path."""
    for key in ("WANDB_PROJECT", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(key, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    for key in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(key, str(home / key.lower()))
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # a closed port, should anything try
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    # Unset for the test (the mlflow logger allows its file store itself), and unset again after it.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")


def _wandb_history(path: Path) -> list[dict[str, float]]:
    """The logged rows of an offline ``run-<id>.wandb`` file: a LevelDB-style log of protobuf
    records (a 7-byte ``:W&B`` header, then 32 KiB blocks of checksum, length, type, data chunks)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, chunks, rows = 7, 32768, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunks += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            chunks = b""
            if record.WhichOneof("record_type") == "history":
                items = record.history.item
                rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items})
    return rows


def test_wandb_runs_offline_into_the_run_directory_and_resumes_the_same_run(tmp_path, offline):
    pytest.importorskip("wandb", reason="the wandb extra is part of samlens[all]")
    cfg = tiny_cfg(**{"train.loggers": ["wandb"]})
    run_dir = tmp_path / "run"
    with pytest.raises(Interrupt):
        run_experiment(cfg, run_dir, step_hook=_interrupt_at(6), quiet=True)
    run_experiment(cfg, run_dir, quiet=True)
    run_id = read_meta(run_dir)["run_id"]
    runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(r.name.endswith(f"-{run_id}") for r in runs)  # one W&B run, resumed
    sessions = [_wandb_history(r / f"run-{run_id}.wandb") for r in runs]
    rows = [row for session in sessions for row in session]
    logged = {(row["_step"], k): v for row in rows for k, v in row.items() if not k.startswith("_")}
    for (step, key), value in _event_scalars(run_dir).items():
        assert logged[(step, key)] == pytest.approx(value, rel=1e-12), key
    assert {s for s, k in logged if k == "train/loss"} == set(range(2, STEPS + 1, 2))
    assert min(row["_step"] for row in sessions[1]) == 6  # the resumed session replays from the checkpoint


def test_mlflow_writes_a_file_store_in_the_run_directory_and_resumes_the_same_run(tmp_path, offline):
    pytest.importorskip("mlflow", reason="the mlflow extra is part of samlens[all]")
    from mlflow.tracking import MlflowClient

    cfg = tiny_cfg(**{"train.loggers": ["mlflow"]})
    run_dir = tmp_path / "run"
    with pytest.raises(Interrupt):
        run_experiment(cfg, run_dir, step_hook=_interrupt_at(6), quiet=True)
    run_experiment(cfg, run_dir, quiet=True)
    client = MlflowClient(tracking_uri=(run_dir / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("samlens")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["samlens.run_id"] == read_meta(run_dir)["run_id"]
    assert run.info.status == "FINISHED" and run.data.params["optim.lr"] == "0.1"
    for (step, key), value in _event_scalars(run_dir).items():
        history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}
        assert history[step] == pytest.approx(value, rel=1e-12), key
    loss = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in loss) == list(range(2, STEPS + 1, 2))  # step 6 once, though trained twice


@pytest.mark.parametrize(
    "name, modules",
    [
        ("wandb", ["wandb"]),
        ("mlflow", ["mlflow", "mlflow.tracking"]),
        ("tensorboard", ["tensorboard", "torch.utils.tensorboard"]),
    ],
)
def test_a_missing_package_is_one_line_before_anything_is_written(tmp_path, monkeypatch, name, modules):
    import torch.utils

    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # `import module` then fails as if not installed
    monkeypatch.delattr(torch.utils, "tensorboard", raising=False)
    with pytest.raises(ConfigError) as info:
        run_experiment(tiny_cfg(**{"train.loggers": [name]}), tmp_path / "run", quiet=True)
    message = str(info.value)
    assert "\n" not in message and message == (
        f"{name} is not installed; it comes with samlens's {name!r} extra: pip install 'samlens[{name}]'"
    )
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------
# the hook: every exit path closes, a failing backend is dropped, only the writer logs

closed_with: list[str] = []


class _Recorder:
    @staticmethod
    def check() -> None:
        pass

    def __init__(self, info: RunInfo) -> None:
        if info.name == "unreachable":
            raise RuntimeError("connection refused\nretrying")
        self.fail = info.name == "boom"

    def log_scalars(self, scalars, step, epoch) -> None:
        if self.fail:
            raise RuntimeError("tracker went away\nsecond line")

    def close(self, outcome: str) -> None:
        closed_with.append(outcome)


@pytest.fixture
def recorder(monkeypatch):
    """``test_recorder`` in the registry for one test (a plugin logger, as a user registers one)."""
    monkeypatch.setattr(LOGGERS, "_items", dict(LOGGERS._items))
    register_logger("test_recorder")(_Recorder)
    closed_with.clear()


def _preempt_at(k):
    def hook(step):
        if step == k:
            os.kill(os.getpid(), signal.SIGTERM)  # caught by the run: a checkpoint, then Preempted

    return hook


@pytest.mark.parametrize(
    "overrides, hook, raised, outcome",
    [
        ({}, None, None, "done"),
        ({"optim.lr": 1e30, "optim.momentum": 0.0, "data.options": {"scale": 1e6}}, None, None, "failed"),
        ({}, _preempt_at(5), Preempted, "stopped"),
        ({}, _interrupt_at(5), Interrupt, "failed"),
    ],
)
def test_loggers_are_closed_on_every_exit_path(tmp_path, recorder, overrides, hook, raised, outcome):
    cfg = tiny_cfg(**{"train.loggers": ["test_recorder"], **overrides})
    if raised is None:
        run_experiment(cfg, tmp_path / "run", step_hook=hook, quiet=True)
    else:
        with pytest.raises(raised):
            run_experiment(cfg, tmp_path / "run", step_hook=hook, quiet=True)
    assert closed_with == [outcome]


def test_a_failing_backend_is_dropped_with_one_log_line_and_the_run_finishes(tmp_path, recorder):
    cfg = tiny_cfg(**{"name": "boom", "train.loggers": ["test_recorder", "csv"]})
    run_dir = run_experiment(cfg, tmp_path / "run", quiet=True)
    log = (run_dir / "train.log").read_text()
    assert (run_dir / "done").exists() and log.count("logger test_recorder stopped") == 1
    assert "RuntimeError: tracker went away" in log and "second line" not in log
    assert closed_with == ["failed"]  # closed once, when dropped
    assert set(_event_scalars(run_dir)) <= set(_csv(run_dir))  # the other logger kept going


def test_a_logger_that_cannot_start_is_one_line_and_the_run_can_be_resumed(tmp_path, recorder):
    cfg = tiny_cfg(**{"name": "unreachable", "train.loggers": ["csv", "test_recorder"]})
    with pytest.raises(ConfigError) as info:
        run_experiment(cfg, tmp_path / "run", quiet=True)
    assert str(info.value) == "cannot start the test_recorder logger: RuntimeError: connection refused"
    assert run_status(tmp_path / "run") == "pending"
    run_experiment(tiny_cfg(**{"name": "unreachable"}), tmp_path / "run", quiet=True)
    assert (tmp_path / "run" / "done").exists()


def test_a_process_that_does_not_write_opens_no_logger(tmp_path):
    writer = events.EventWriter(tmp_path, {}, writes=False)
    writer.open_loggers(["csv"], name="x", start_step=0, log=logging.getLogger("x"))
    writer.log_step(2, 0, 1.0, 0.1)
    writer.emit("eval", 2, 0, {"acc": 1.0})
    writer.close()
    assert list(tmp_path.iterdir()) == []


def test_a_torn_last_csv_row_is_dropped_and_the_next_row_starts_on_its_own_line(tmp_path):
    from samlens.train.loggers.files import CsvLogger

    info = RunInfo(tmp_path, "x")
    CsvLogger(info).log_scalars({"a": 1.0, "b": math.nan}, 2, 0)
    path = tmp_path / "metrics.csv"
    path.write_bytes(path.read_bytes() + b"4,0,a,0.12")  # killed halfway through a row (0.125)
    assert [(r["step"], r["key"]) for r in read_metrics(tmp_path)] == [(2, "a"), (2, "b")]
    CsvLogger(info).log_scalars({"a": 0.5}, 4, 0)
    assert path.read_text().splitlines() == ["step,epoch,key,value", "2,0,a,1.0", "2,0,b,nan", "4,0,a,0.5"]


# ---------------------------------------------------------------------------------------
# log lines next to the progress bar


def test_log_lines_are_written_above_the_progress_bar_not_onto_it():
    from tqdm.auto import tqdm

    stream = io.StringIO()
    handler = events.TqdmHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("samlens.test.tqdm")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        with tqdm(total=10, file=stream, mininterval=0, desc="bar") as bar:
            bar.update(3)
            logger.info("step 3/10 loss 0.5")
            bar.update(2)
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "\rstep 3/10 loss 0.5\n" in out  # the bar is cleared (carriage return) before the line
    assert "\rbar:  30%" in out.split("step 3/10 loss 0.5\n", 1)[1]  # and redrawn after it


def test_a_run_with_its_bar_on_the_terminal_keeps_log_lines_off_the_bar(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # the bar is shown only on a terminal
    run_experiment(tiny_cfg(), tmp_path / "run")
    err = capsys.readouterr().err
    assert "tiny:" in err  # the bar was drawn
    lines = [line for line in err.split("\n") if "loss" in line and "step" in line]
    assert len(lines) == STEPS // 2
    for line in lines:  # each log line starts on a cleared line: nothing of the bar before it
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d step", line.split("\r")[-1]), repr(line)
