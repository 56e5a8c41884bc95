"""Floor and ceiling runs in a report: table, fraction of range in summary.csv, verdict, figure."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from samlens.report import write_report
from samlens.report.roles import CEILING, FLOOR, role
from samlens.train.config import config_hash, dump_config, flatten_config, load_config

# probe_acc_label per (kind, seed); kind = floor / ceiling / sgd / sam
PROBES = {
    ("floor", 0): 0.70,
    ("floor", 1): 0.72,
    ("ceiling", 0): 0.90,
    ("ceiling", 1): 0.92,
    ("sgd", 0): 0.75,
    ("sgd", 1): 0.77,
    ("sam", 0): 0.80,
    ("sam", 1): 0.84,
}


def _write(root: Path, kind: str, seed: int) -> None:
    overrides: dict = {"train.seed": seed, "optim.name": "sam" if kind == "sam" else "sgd"}
    if kind == "ceiling":
        overrides["data.options"] = {"shuffle_easy": True}
    cfg = load_config(None, overrides)
    run_dir = root / kind / config_hash(cfg)
    run_dir.mkdir(parents=True)
    dump_config(cfg, run_dir / "config.yaml")
    flat = dict(flatten_config(cfg))
    if kind == "floor":
        flat["headroom"] = "floor"
    metrics = {"probe_acc_label": PROBES[(kind, seed)], "probe_acc_other": 0.99, "n_test": 400}
    record = {"event": "final", "step": 1, "epoch": 1, "metrics": metrics, "config": flat}
    (run_dir / "results.jsonl").write_text(json.dumps(record) + "\n")
    (run_dir / "done").write_text("")


@pytest.fixture(scope="module")
def headroom_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("headroom") / "sweep"
    for kind, seed in PROBES:
        _write(root, kind, seed)
    write_report(root)
    return root


def test_roles_from_the_recorded_config():
    assert role({"headroom": "floor", "optim.name": "sgd"}) == FLOOR
    assert role({"data.options.shuffle_easy": True}) == CEILING
    assert role({"data.options.shuffle_easy": False, "optim.name": "sam"}) is None


def test_summary_has_the_fraction_of_range_per_optimizer(headroom_sweep: Path):
    with open(headroom_sweep / "summary.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["metric"] == "fraction_of_range"]
    got = {r["optim.name"]: (float(r["mean"]), float(r["se"]), r["n"]) for r in rows}
    # floor 0.71, ceiling 0.91: range 0.20. SGD 0.76 -> 0.25; SAM 0.82 -> 0.55; SE = seed SE / range.
    assert set(got) == {"sgd", "sam"}
    assert got["sgd"][0] == pytest.approx(0.25) and got["sam"][0] == pytest.approx(0.55)
    assert got["sgd"][1] == pytest.approx(0.01 / 0.20) and got["sam"][1] == pytest.approx(0.02 / 0.20)
    assert got["sam"][2] == "2"


def test_report_shows_floor_ceiling_table_verdict_and_figure(headroom_sweep: Path):
    report = (headroom_sweep / "report.md").read_text()
    assert "| untrained (floor) | 0.710 ± 0.010 (n=2) | 0% |" in report
    assert "| hard-only (ceiling) | 0.910 ± 0.010 (n=2) | 100% |" in report
    assert "| SGD | 0.760 ± 0.010 (n=2) | 25% ± 5% |" in report
    assert "| SAM ρ=0.05 | 0.820 ± 0.020 (n=2) | 55% ± 10% |" in report
    # Paired by seed: differences 0.05 and 0.07, mean 0.06, SE std/√2 = 0.01 -> 6.0 SE: reproduces.
    # (Unpaired, the SEs in quadrature would give sqrt(0.01² + 0.02²) = 0.0224, 2.7 SE.)
    assert (
        "**reproduces** (SAM ρ=0.05): SAM ρ=0.05 raises the hard feature's probe accuracy by 0.060 "
        "(6.0 SE of the paired difference)" in report
    )
    # The references form their own groups in the ordinary tables too.
    assert "| untrained (floor), optim=sgd, ρ=— | 0.7100 ± 0.0100 (n=2)" in report
    assert (headroom_sweep / "figures" / "headroom.png").is_file()


def test_without_references_there_is_no_headroom_section(tmp_path: Path):
    for kind, seed in [("sgd", 0), ("sgd", 1), ("sam", 0), ("sam", 1)]:
        _write(tmp_path / "sweep", kind, seed)
    write_report(tmp_path / "sweep")
    assert "Headroom" not in (tmp_path / "sweep" / "report.md").read_text()
    assert not (tmp_path / "sweep" / "figures" / "headroom.png").exists()
