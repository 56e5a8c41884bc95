from pathlib import Path

import pytest

from samlens.cli.main import main
from samlens.train.sweep import expand, load_grid_spec

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "configs" / "sweeps").glob("*.yaml"))


def test_sweep_help_lists_actions_and_launchers(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "launch", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "{local,ray,slurm}" in out and "--workers" in out


@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_shipped_sweep_specs_expand_and_report_status(spec, tmp_path, capsys):
    points = expand(load_grid_spec(spec), tmp_path)
    assert len(points) >= 2 and len({p.config_hash for p in points}) == len(points)
    assert main(["sweep", "status", str(spec), "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert f"0 done, 0 running, 0 failed, {len(points)} pending (of {len(points)})" in out
    assert out.count("pending") == len(points) + 1  # the counts line and one row per run
    assert not (tmp_path / "s").exists()  # status never writes


def test_sweep_without_action_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
