import json

import pytest
import yaml

from samlens.cli.main import main
from samlens.train.config import config_to_dict, load_config

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
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, args, needle):
    run_dir = tmp_path / "run"
    assert main(["run", *FAST, *args, "--run_dir", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("samlens run: error:") and "\n" not in err and needle in err
    assert not run_dir.exists()


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
