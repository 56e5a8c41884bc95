import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from samlens.cli.main import main
from samlens.rundir import read_results
from samlens.train.config import config_to_dict, load_config

TRAIN_TESTS = Path(__file__).resolve().parents[1] / "train"
sys.path.insert(0, str(TRAIN_TESTS))
from train_tiny_data import NAME  # noqa: E402

FAST = ["--data.name", "mnist5k_dominoes", "--model.name", "mlp", "--model.options", '{"hidden": [16]}',
        "--train.steps", "3", "--train.epochs", "1", "--probe.enabled", "false", "--quiet"]  # fmt: skip


def test_print_config_applies_file_then_overrides(tmp_path, capsys):
    src = tmp_path / "x.yaml"
    src.write_text(yaml.safe_dump({"name": "x", "optim": {"name": "sgd", "rho": 0.2, "lr": 0.3}}))
    assert (
        main(["run", "--config", str(src), "--optim.rho", "0.1", "--train.bf16", "true", "--print_config"])
        == 0
    )
    printed = yaml.safe_load(capsys.readouterr().out)
    expected = load_config(src, {"optim.rho": 0.1, "train.bf16": True})
    assert printed == config_to_dict(expected)
    assert printed["optim"]["lr"] == 0.3


def test_run_trains_and_reruns_as_skip(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["run", *FAST, "--run_dir", str(run_dir)]) == 0
    assert (run_dir / "done").exists()
    events = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "final" and events[-1]["step"] == 3
    assert main(["run", *FAST, "--run_dir", str(run_dir)]) == 0
    assert len((run_dir / "results.jsonl").read_text().splitlines()) == len(events)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--data.name", "nope"], "unknown dataset 'nope'; valid choices:"),
        (["--model.name", "nope"], "unknown model 'nope'; valid choices:"),
        (["--optim.name", "nope"], "unknown optimizer 'nope'; valid choices:"),
        (["--optim.lr", "fast"], 'Parser key "optim.lr"'),
        (["--train.epochs", "1.5"], "train.epochs"),
        (["--optim.rho", "-0.5"], "optim.rho must be >= 0"),
        (["--train.schedule", "linear"], "valid choices: cosine, step, constant"),
        (
            ["--data.name", "mnist_fashion_dominoes", "--data.root", "/nonexistent/fmnist"],
            "/nonexistent/fmnist",
        ),
        (
            ["--probe.engine", "nope"],
            "probe.engine: unknown probe engine 'nope'; valid choices: sklearn, torch",
        ),
        (["--probe.engine", "sklearn:cuda"], "only the torch engine takes a device"),
        (["--probe.engine", "torch:nope"], "probe.engine: unknown device 'nope'"),
        (["--threads", "0"], "--threads must be >= 1"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, args, needle):
    run_dir = tmp_path / "run"
    assert main(["run", *FAST, *args, "--run_dir", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("samlens run: error:") and "\n" not in err and needle in err
    assert not run_dir.exists()


@pytest.mark.parametrize("name", ["../escaped", "a/b", "/tmp/absolute", "..", ".", "back\\slash", ""])
def test_config_name_cannot_leave_runs_directory(tmp_path, monkeypatch, capsys, name):
    monkeypatch.chdir(tmp_path / "..")
    before = set(Path.cwd().iterdir())
    monkeypatch.chdir(tmp_path)
    assert main(["run", *FAST, "--name", name]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("samlens run: error: name ") and "must be a plain name" in err and "\n" not in err
    assert not (tmp_path / "runs").exists() and set(tmp_path.parent.iterdir()) == before


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _interrupted_run(run_dir: Path) -> str:
    """A finished run turned back into an interrupted one (no ``done``); its results text."""
    assert main(["run", *FAST, "--run_dir", str(run_dir)]) == 0
    (run_dir / "done").unlink()
    return (run_dir / "results.jsonl").read_text()


@pytest.mark.parametrize("damage", ["crafted", "truncated", "random", "empty"])
def test_resume_from_bad_checkpoint_is_one_line_exit_2(tmp_path, capsys, damage):
    run_dir = tmp_path / "run"
    results = _interrupted_run(run_dir)
    ckpt = run_dir / "checkpoint.pt"
    marker = tmp_path / "payload-ran"
    if damage == "crafted":
        torch.save({"model": {"w": _Payload(marker)}}, ckpt)
    elif damage == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    else:
        ckpt.write_bytes(os.urandom(4096) if damage == "random" else b"")
    capsys.readouterr()
    assert main(["run", *FAST, "--run_dir", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("samlens run: error: cannot load checkpoint") and "\n" not in err
    assert "delete it to train the run again" in err
    assert not marker.exists()
    assert (run_dir / "results.jsonl").read_text() == results and not (run_dir / "done").exists()
    assert not (run_dir / "running").exists()


def test_second_process_on_a_run_directory_is_refused(tmp_path, capsys):
    from test_rundir import lock_held_by_other_process

    run_dir = tmp_path / "run"
    with lock_held_by_other_process(run_dir):
        assert main(["run", *FAST, "--run_dir", str(run_dir)]) == 2
        err = capsys.readouterr().err.strip()
        assert "is being trained by another process" in err and "\n" not in err
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # nothing written
    assert main(["run", *FAST, "--run_dir", str(run_dir)]) == 0  # the holder is gone


RUN_TWICE = ["--data.name", NAME, "--data.options", '{"n": 4096}', "--data.batch_size", "16",
             "--model.name", "mlp", "--model.options", '{"hidden": [32]}', "--train.epochs", "2",
             "--train.deterministic", "true", "--probe.enabled", "false", "--quiet"]  # fmt: skip


@pytest.mark.slow
def test_two_concurrent_runs_train_once(tmp_path):
    # Whichever process gets the lock trains; the other is refused (exit 2) or, if it comes
    # after the end, skips the finished run (exit 0). Either way every event is written once.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TRAIN_TESTS), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-c", "import train_tiny_data, sys; from samlens.cli.main import main; "
           "sys.exit(main(sys.argv[1:]))", "run", *RUN_TWICE, "--run_dir", str(tmp_path / "run")]  # fmt: skip
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in "ab"
    ]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 2]), results
    if codes == [0, 2]:
        assert any("being trained by another process" in err for _, err in results)
    assert main(["run", *RUN_TWICE, "--run_dir", str(tmp_path / "ref")]) == 0
    strip = lambda run: [(e["event"], e["step"], e["metrics"]) for e in read_results(tmp_path / run)]  # noqa: E731
    assert strip("run") == strip("ref")


def test_threads_option_is_recorded(tmp_path):
    run_dir = tmp_path / "run"
    assert main(["run", *FAST, "--threads", "1", "--run_dir", str(run_dir)]) == 0
    assert json.loads((run_dir / "meta.json").read_text())["threads"] == 1


def test_unknown_key_in_yaml_names_valid_keys(tmp_path, capsys):
    src = tmp_path / "bad.yaml"
    src.write_text("optim:\n  rhoo: 0.1\n")
    assert main(["run", "--config", str(src), "--run_dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown key optim.rhoo" in err and "valid keys: name, base, lr" in err and "\n" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "option, needles",
    [
        ("--optim.rhoo", ["did you mean --optim.rho?", "valid options: --optim.base,", "--optim.rho,"]),
        ("--frobnicate", ["valid options: --config,", "--optim.*", "--train.*"]),
    ],
)
def test_unknown_option_names_the_valid_ones(tmp_path, capsys, option, needles):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", *FAST, option, "0.1", "--run_dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"samlens run: error: unrecognized arguments: {option} 0.1") and "\n" not in err
    for needle in needles:
        assert needle in err
    assert "--data.name" not in err  # the listing stays short: sections, not every key
    assert not (tmp_path / "run").exists()


def test_unwritable_run_directory(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["run", *FAST, "--run_dir", str(blocker / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot write run directory" in err and "\n" not in err
    assert blocker.read_text() == "not a directory"


def test_other_config_in_existing_run_dir_is_refused(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["run", *FAST, "--run_dir", str(run_dir)]) == 0
    before = (run_dir / "results.jsonl").read_text()
    assert main(["run", *FAST, "--optim.lr", "0.01", "--run_dir", str(run_dir)]) == 2
    assert "holds a different config" in capsys.readouterr().err
    assert (run_dir / "results.jsonl").read_text() == before
