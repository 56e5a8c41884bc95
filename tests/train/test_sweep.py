import itertools
from pathlib import Path

import pytest
import yaml

from samlens.cli.main import main
from samlens.errors import ConfigError
from samlens.train import launchers
from samlens.train.config import config_hash, load_config
from samlens.train.sweep import count_states, expand, load_grid_spec, sweep_status

GRID = {
    "base": {"data": {"name": "mnist5k_dominoes"}, "train": {"epochs": 1}},
    "grid": {"optim.name": ["sgd", "adamw"], "optim.rho": [0.05, 0.1], "train.seed": [0, 1, 2]},
    "exclude": [{"optim.name": "sgd", "optim.rho": 0.1}, {"train.seed": 2, "optim.rho": 0.1}],
}


def write_grid(tmp_path: Path, spec: dict, name: str = "grid.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_expansion_is_stable_and_applies_excludes(tmp_path):
    grid = write_grid(tmp_path, GRID)
    first = expand(load_grid_spec(grid), tmp_path / "out")
    second = expand(load_grid_spec(grid), tmp_path / "out")
    assert [(p.assignment, p.config_hash) for p in first] == [(p.assignment, p.config_hash) for p in second]
    # Reference: the product in spec order (last key fastest) minus the excluded points.
    keys = list(GRID["grid"])
    expected = [dict(zip(keys, v)) for v in itertools.product(*GRID["grid"].values())]
    expected = [
        a
        for a in expected
        if not (a["optim.name"] == "sgd" and a["optim.rho"] == 0.1)
        and not (a["train.seed"] == 2 and a["optim.rho"] == 0.1)
    ]
    assert [p.assignment for p in first] == expected
    assert len(first) == 2 * 2 * 3 - 3 - 1  # 3 sgd/ρ=0.1, plus sam/ρ=0.1/seed 2
    for p in first:
        cfg = load_config(None, {"data.name": "mnist5k_dominoes", "train.epochs": 1, **p.assignment})
        assert p.config_hash == config_hash(cfg)
        assert p.run_dir == tmp_path / "out" / config_hash(cfg)
    assert len({p.config_hash for p in first}) == len(first)
    assert not (tmp_path / "out").exists()  # expanding writes nothing


def test_base_file_relative_to_grid_and_union_of_subgrids(tmp_path):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "base.yaml").write_text("train:\n  epochs: 2\noptim:\n  lr: 0.01\n")
    spec = {
        "base": "base.yaml",
        "grid": [
            {"optim.name": ["sgd"], "train.seed": [0, 1]},
            {"optim.name": ["adamw"], "optim.rho": [0.05], "train.seed": [0, 1]},
            {"optim.name": ["sgd"], "train.seed": [1]},  # duplicate config: runs once
        ],
    }
    points = expand(load_grid_spec(write_grid(tmp_path / "cfg", spec)), tmp_path / "out")
    assert [p.assignment for p in points] == [
        {"optim.name": "sgd", "train.seed": 0},
        {"optim.name": "sgd", "train.seed": 1},
        {"optim.name": "adamw", "optim.rho": 0.05, "train.seed": 0},
        {"optim.name": "adamw", "optim.rho": 0.05, "train.seed": 1},
    ]
    assert all(p.config.train.epochs == 2 and p.config.optim.lr == 0.01 for p in points)


def test_option_keys_inside_mappings_are_valid_grid_keys(tmp_path):
    spec = {"grid": {"data.options.correlation": [1.0, 0.9]}}
    points = expand(load_grid_spec(write_grid(tmp_path, spec)), tmp_path / "out")
    assert [p.config.data.options for p in points] == [{"correlation": 1.0}, {"correlation": 0.9}]


def _make_done(run_dir: Path) -> None:
    run_dir.mkdir(parents=True)
    (run_dir / "results.jsonl").write_text("")
    (run_dir / "done").write_text("")


def test_status_counts_and_relaunch_runs_only_unfinished(tmp_path, monkeypatch, capsys):
    grid = write_grid(tmp_path, {**GRID, "out": str(tmp_path / "sweep")})
    points = expand(load_grid_spec(grid))
    _make_done(points[0].run_dir)
    _make_done(points[3].run_dir)
    points[1].run_dir.mkdir()
    (points[1].run_dir / "failed").write_text("training loss is nan at step 3\n")
    statuses = sweep_status(points)
    assert count_states(statuses) == {"done": 2, "running": 0, "failed": 1, "pending": len(points) - 3}

    seen = []

    def fake_launch(name, tasks, workers=1, **options):
        seen.append((name, workers, [Path(t.run_dir).name for t in tasks]))
        for t in tasks:
            _make_done(Path(t.run_dir))
        return [launchers.Outcome(t.run_dir, "done") for t in tasks]

    monkeypatch.setattr(launchers, "launch", fake_launch)
    assert main(["sweep", "launch", str(grid), "--workers", "3"]) == 1  # the failed run remains
    expected = [p.config_hash for i, p in enumerate(points) if i not in (0, 1, 3)]
    assert seen == [("local", 3, expected)]
    assert (tmp_path / "sweep" / "sweep.json").exists()
    seen.clear()
    main(["sweep", "launch", str(grid)])
    assert seen == [("local", 1, [])]  # relaunch: nothing left to run

    capsys.readouterr()
    assert main(["sweep", "status", str(grid)]) == 0
    out = capsys.readouterr().out
    assert f"{len(points) - 1} done, 0 running, 1 failed, 0 pending (of {len(points)})" in out
    assert "training loss is nan at step 3" in out
    assert points[1].config_hash in out


BAD = {
    "unknown grid key": ({"grid": {"optim.rhoo": [0.1]}}, "grid key 'optim.rhoo' does not exist"),
    "unknown section": ({"grid": {"optimizer.rho": [0.1]}}, "grid key 'optimizer.rho' does not exist"),
    "unknown exclude key": (
        {"grid": {"optim.rho": [0.1]}, "exclude": [{"train.sed": 1}]},
        "grid key 'train.sed' does not exist",
    ),
    "bad value": ({"grid": {"optim.rho": [0.1, -1]}}, "optim.rho must be >= 0"),
    "unknown optimizer": ({"grid": {"optim.name": ["sgd", "samm"]}}, "unknown optimizer 'samm'"),
    "not a list": ({"grid": {"optim.rho": 0.1}}, "must map to a non-empty list"),
    "no grid": ({"base": {}}, "missing 'grid'"),
    "unknown field": ({"grid": {"optim.rho": [0.1]}, "grdi": 1}, "unknown grid spec field"),
    "all excluded": ({"grid": {"optim.rho": [0.1]}, "exclude": [{"optim.rho": 0.1}]}, "every grid point"),
    "missing base": ({"base": "nope.yaml", "grid": {"optim.rho": [0.1]}}, "base config 'nope.yaml'"),
    "bad import": ({"grid": {"optim.rho": [0.1]}, "imports": ["no_such_module_x"]}, "cannot import"),
}


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("action", ["launch", "status"])
def test_bad_grid_specs_fail_in_one_line_and_write_nothing(tmp_path, capsys, case, action):
    spec, message = BAD[case]
    grid = write_grid(tmp_path, spec)
    out = tmp_path / "out"
    assert main(["sweep", action, str(grid), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("samlens sweep: error: ") and message in err
    assert not out.exists()


def test_missing_grid_file_and_bad_yaml(tmp_path, capsys):
    assert main(["sweep", "launch", str(tmp_path / "nope.yaml")]) == 2
    assert "grid file" in capsys.readouterr().err
    grid = tmp_path / "bad.yaml"
    grid.write_text("grid: {optim.rho: [0.1\n")
    assert main(["sweep", "launch", str(grid), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid YAML (line" in err
    assert not (tmp_path / "out").exists()
    grid.write_text("- just\n- a list\n")
    assert main(["sweep", "status", str(grid)]) == 2
    assert "must be a YAML mapping" in capsys.readouterr().err


def test_bad_launcher_arguments(tmp_path, capsys):
    grid = write_grid(tmp_path, GRID)
    assert main(["sweep", "launch", str(grid), "--workers", "0", "--out", str(tmp_path / "o")]) == 2
    assert "--workers must be >= 1" in capsys.readouterr().err
    assert main(["sweep", "launch", str(grid), "--launcher", "kubernetes", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "samlens sweep: error: unknown launcher 'kubernetes'; valid choices: local, ray, slurm"
    ]
    for bad, message in [
        (["--launcher", "slurm", "--mem", "lots"], "--mem 'lots': expected a size such as 16G"),
        (["--launcher", "slurm", "--slurm-param", "gres"], "--slurm-param 'gres': expected KEY=VALUE"),
        (["--launcher", "slurm", "--slurm-param", "array=0-3"], "--slurm-param array: set by the launcher"),
        (["--launcher", "slurm", "--time", "0"], "slurm option time_min must be >= 1, got 0"),
        (["--launcher", "slurm", "--tasks-per-run", "0"], "slurm option tasks_per_run must be >= 1"),
        (["--launcher", "ray", "--ray-retries", "-1"], "--ray-retries must be >= 0, got -1"),
        (["--launcher", "slurm", "--cpus-per-task", "0"], "--cpus-per-task must be >= 1, got 0"),
        (["--partition", "gpu"], "--partition is not an option of the local launcher"),
        (["--gpus-per-task", "1"], "--gpus-per-task is not an option of the local launcher"),
        (["--launcher", "ray", "--time", "30"], "--time is not an option of the ray launcher"),
        (
            ["--launcher", "slurm", "--ray-address", "auto"],
            "--ray-address is not an option of the slurm launcher",
        ),
    ]:
        assert main(["sweep", "launch", str(grid), "--out", str(tmp_path / "o"), *bad]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (bad, lines)
    assert not (tmp_path / "o").exists()  # nothing is written before every option is checked
    with pytest.raises(ConfigError, match="unknown launcher 'nope'; valid choices: local, ray, slurm"):
        launchers.launch("nope", [])


def test_unwritable_sweep_directory(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    grid = write_grid(tmp_path, GRID)
    assert main(["sweep", "launch", str(grid), "--out", str(blocker / "sub")]) == 2
    assert "cannot create sweep directory" in capsys.readouterr().err
