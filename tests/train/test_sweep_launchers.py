"""Each launcher completes a real 2-run sweep of the real runner on a tiny dataset.

The tiny dataset is registered by ``train_tiny_data`` (next to these tests); the grid
spec's ``imports`` makes every worker import it, and PYTHONPATH lets workers of Ray and
submitit (fresh interpreters) find it.
"""

import json
import os
from pathlib import Path

import pytest
import yaml

from samlens.cli.main import main
from samlens.report import write_report
from samlens.train.rundir import read_results
from samlens.train.sweep import expand, load_grid_spec, sweep_status

HERE = Path(__file__).resolve().parent

TINY = {
    "base": {
        "name": "tiny",
        "data": {"name": "tiny_test_blobs", "batch_size": 64, "options": {"n": 256}},
        "model": {"name": "mlp", "options": {"hidden": [8]}},
        "optim": {"lr": 0.1},
        "train": {"epochs": 2, "log_every": 4, "deterministic": True},
    },
    "imports": ["train_tiny_data"],
    "grid": {"train.seed": [0, 1]},
}


@pytest.fixture
def tiny_grid(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    grid = tmp_path / "tiny.yaml"
    grid.write_text(yaml.safe_dump({**TINY, "out": str(tmp_path / "sweep")}, sort_keys=False))
    return grid


def _finished(grid: Path) -> list[Path]:
    points = expand(load_grid_spec(grid))
    assert [s.state for s in sweep_status(points)] == ["done", "done"]
    for p in points:
        events = read_results(p.run_dir)
        assert events[-1]["event"] == "final" and 0 <= events[-1]["metrics"]["test_acc"] <= 1
    return [p.run_dir for p in points]


def _snapshot(run_dirs: list[Path]) -> dict[str, tuple[int, str]]:
    return {
        str(p / name): ((p / name).stat().st_mtime_ns, (p / name).read_text())
        for p in run_dirs
        for name in ("results.jsonl", "done")
    }


@pytest.mark.slow
def test_local_launcher_completes_sweep_and_relaunch_skips(tiny_grid, capsys):
    assert main(["sweep", "launch", str(tiny_grid), "--launcher", "local", "--workers", "2"]) == 0
    runs = _finished(tiny_grid)
    before = _snapshot(runs)
    capsys.readouterr()
    assert main(["sweep", "launch", str(tiny_grid), "--launcher", "local"]) == 0
    assert "2 done (skipped)" in capsys.readouterr().out
    assert _snapshot(runs) == before  # nothing re-ran or appended

    # The report of the real sweep: both seeds in one setting, n=2 in every table row.
    sweep = runs[0].parent
    md = write_report(sweep).read_text()
    finals = [read_results(r)[-1]["metrics"]["test_acc"] for r in runs]
    mean = sum(finals) / 2
    se = abs(finals[0] - finals[1]) / 2  # std (ddof=1) / √2 for two values
    assert f"{mean:.4f} ± {se:.4f} (n=2)" in md
    assert json.loads((sweep / "sweep.json").read_text())["imports"] == ["train_tiny_data"]


@pytest.mark.slow
def test_ray_launcher_completes_sweep(tiny_grid):
    import ray  # the "ray" extra; CI installs samlens[all]

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert main(["sweep", "launch", str(tiny_grid), "--launcher", "ray", "--workers", "2"]) == 0
    finally:
        ray.shutdown()
    _finished(tiny_grid)


@pytest.mark.slow
def test_submitit_launcher_completes_sweep_with_local_executor(tiny_grid):
    args = ["sweep", "launch", str(tiny_grid), "--launcher", "slurm", "--cluster", "local", "--workers", "2"]
    assert main(args) == 0
    runs = _finished(tiny_grid)
    assert (runs[0].parent / ".submitit").is_dir()  # submitit's own logs, beside the runs
