import json
from pathlib import Path

import pytest

from samlens.cli.main import main
from samlens.train.config import dump_config, flatten_config, load_config


def _run(tmp_path: Path, rho: float = 0.05, name: str = "run", probe: float = 0.875) -> Path:
    cfg = load_config(None, {"optim.name": "sam", "optim.rho": rho, "train.epochs": 1})
    run = tmp_path / name
    run.mkdir(parents=True)
    dump_config(cfg, run / "config.yaml")
    (run / "meta.json").write_text(json.dumps({"git": {"commit": "abc123", "dirty": True}}))
    event = {"event": "final", "step": 5, "epoch": 1, "time": "t", "config": flatten_config(cfg)}
    event["metrics"] = {"test_acc": 0.75, "probe_acc_label": probe, "probe_acc_other": 0.5}
    (run / "results.jsonl").write_text(json.dumps(event) + "\n")
    (run / "done").write_text("")
    return run


def test_report_cli_writes_all_outputs(tmp_path, capsys):
    run = _run(tmp_path)
    out = tmp_path / "elsewhere"
    assert main(["report", str(run), "--out", str(out)]) == 0
    assert "report.md" in capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert "0.8750 (n=1)" in md and "abc123+dirty" in md and "uncommitted changes" in md
    # One run is one point: no probe-vs-rho figure (and no figures folder) rather than a bare dot.
    assert {p.name for p in out.iterdir()} == {"report.md", "report.html", "summary.csv"}


def test_report_cli_draws_probe_vs_rho_for_two_radii(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    _run(sweep, rho=0.05, name="a", probe=0.8)
    _run(sweep, rho=0.2, name="b", probe=0.9)
    out = tmp_path / "elsewhere"
    assert main(["report", str(sweep), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"report.md", "report.html", "summary.csv", "figures"}
    assert (out / "figures" / "probe_vs_rho.png").exists() and (out / "figures" / "probe_vs_rho.pdf").exists()


@pytest.mark.parametrize("case", ["missing", "empty", "file", "unrelated files"])
def test_report_cli_bad_inputs(tmp_path, capsys, case):
    target = tmp_path / "d"
    if case == "empty":
        target.mkdir()
    elif case == "file":
        target.write_text("x")
    elif case == "unrelated files":
        (target / "sub").mkdir(parents=True)
        (target / "sub" / "notes.txt").write_text("x")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    assert main(["report", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("samlens report: error: ") and err.count("\n") == 1
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing written
