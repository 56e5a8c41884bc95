"""`samlens probe --method dfr` uses DFR's own engine, not the run's balanced-probe engine."""

import sys
from pathlib import Path

import pytest

import samlens.probe
from samlens.cli.main import main
from samlens.probe.dfr import DFR_ENGINE
from samlens.train.config import load_config
from samlens.train.runner import run_experiment

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_tiny_data import NAME  # noqa: E402


@pytest.fixture(scope="module")
def trained_with_sklearn_engine(tmp_path_factory):
    cfg = load_config(
        overrides={
            "data.name": NAME,
            "data.batch_size": 16,
            "model.name": "mlp",
            "model.options": {"hidden": [8]},
            "train.epochs": 1,
            "probe.enabled": False,
            "probe.engine": "sklearn",
        }
    )
    return run_experiment(cfg, tmp_path_factory.mktemp("runs") / "run", quiet=True)


def test_probe_dfr_ignores_the_runs_probe_engine(trained_with_sklearn_engine, monkeypatch, capsys):
    seen = []

    def recording_dfr(train, val, test, *, engine, **kwargs):
        seen.append(engine)
        return {"worst_group_acc": 1.0}

    monkeypatch.setattr(samlens.probe, "dfr", recording_dfr)
    run = str(trained_with_sklearn_engine)
    assert main(["probe", run, "--method", "dfr"]) == 0
    assert main(["probe", run, "--method", "dfr", "--engine", "sklearn"]) == 0
    assert seen == [DFR_ENGINE, "sklearn"]
    assert DFR_ENGINE != "sklearn"
    assert "dfr_worst_group_acc" in capsys.readouterr().out
