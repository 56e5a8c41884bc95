"""``samlens run`` with bad dataset or model input: one line on stderr, exit 2, no run directory."""

import json
import sys
from pathlib import Path

import pytest

from samlens.cli.main import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from data_formats import write_cifar, write_mnist, write_waterbirds  # noqa: E402

FAST = ["--train.steps", "2", "--train.epochs", "1", "--data.batch_size", "4", "--quiet"]


def _one_line_exit_2(capsys, args, run_dir, expected):
    assert main(["run", *FAST, *args, "--run_dir", str(run_dir)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("samlens run: error: ") and expected in err, err
    assert not run_dir.exists()


def test_junk_pretrained_file(tmp_path, capsys):
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint\n")
    args = ["--model.name", "resnet18", "--model.pretrained", str(junk)]
    _one_line_exit_2(capsys, args, tmp_path / "run", f"resnet18: cannot read {str(junk)!r} as a weights file")


@pytest.mark.parametrize(
    "model, options, expected",
    [
        ("small_cnn", {"width": -1}, "width must be an integer >= 1, got -1"),
        ("small_cnn", {"width": "abc"}, "model 'small_cnn': option width must be int, got 'abc'"),
        ("small_cnn", {"widht": 8}, "model 'small_cnn': unknown option(s) widht; valid options: norm, width"),
        ("mlp", {"hidden": [16, 0]}, "hidden size must be an integer >= 1, got 0"),
    ],
)
def test_invalid_model_options(tmp_path, capsys, model, options, expected):
    args = ["--model.name", model, "--model.options", json.dumps(options)]
    _one_line_exit_2(capsys, args, tmp_path / "run", expected)


def test_non_numeric_dataset_option(tmp_path, capsys):
    write_waterbirds(tmp_path / "wb")
    args = ["--data.name", "waterbirds", "--data.root", str(tmp_path / "wb")]
    args += ["--data.options", '{"image_size": "abc"}', "--model.name", "small_cnn"]
    _one_line_exit_2(capsys, args, tmp_path / "run", "image_size must be an integer in 8..1024, got 'abc'")


@pytest.fixture()
def cifar_mnist_root(tmp_path):
    write_cifar(tmp_path / "cm", {"train": {1: 6, 9: 5}, "test": {1: 3, 9: 3}})
    write_mnist(tmp_path / "cm" / "MNIST" / "raw", {"train": 4, "test": 2})
    return tmp_path / "cm"


CIFAR_NO_VAL = ["--data.name", "cifar_mnist", "--data.options", '{"val_fraction": 0}',
                "--model.name", "small_cnn", "--model.options", '{"width": 4}']  # fmt: skip


def test_cifar_mnist_without_val_trains_and_reports_no_val_metrics(tmp_path, cifar_mnist_root, capsys):
    run_dir = tmp_path / "run"
    args = [*CIFAR_NO_VAL, "--data.root", str(cifar_mnist_root), "--run_dir", str(run_dir)]
    assert main(["run", *FAST, *args]) == 0
    final = json.loads((run_dir / "results.jsonl").read_text().splitlines()[-1])
    assert final["event"] == "final"
    metrics = final["metrics"]
    assert "test_acc" in metrics and "probe_acc_label" in metrics
    assert not any(key.startswith("val_") for key in metrics)


def test_cifar_mnist_without_val_refuses_dfr_before_training(tmp_path, cifar_mnist_root, capsys):
    args = [*CIFAR_NO_VAL, "--data.root", str(cifar_mnist_root), "--probe.method", "dfr"]
    expected = "probe.method dfr refits the last layer on the val split"
    _one_line_exit_2(capsys, args, tmp_path / "run", expected)


def test_torchvision_weights_name_missing_or_junk_in_the_hub_cache(tmp_path, capsys, monkeypatch):
    # Loading a good cached file is tested in tests/models/test_pretrained.py.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    args = ["--model.name", "resnet18", "--model.pretrained", "ResNet18_Weights.IMAGENET1K_V1"]
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    _one_line_exit_2(capsys, args, tmp_path / "run", f"are not in the torch hub cache ({cached} not found)")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"\x80\x02junk")
    expected = f"resnet18: cannot read {str(cached)!r} as a weights file"
    _one_line_exit_2(capsys, args, tmp_path / "run", expected)
