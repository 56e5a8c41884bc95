import csv
import math
import statistics
from pathlib import Path

import pytest
from runfactory import COMMIT, FINAL, write_run

from samlens.errors import ConfigError
from samlens.report import write_report
from samlens.report.tables import format_cell


def _reference(optim: str, rho: float | None, metric: str) -> tuple[float, float, int]:
    """Mean ± SE (std with ddof=1 over √n) of the hand-written numbers, computed independently."""
    values = [m[metric] for (o, r, _), m in FINAL.items() if o == optim and r == rho]
    return statistics.mean(values), statistics.stdev(values) / math.sqrt(len(values)), len(values)


def _summary_rows(path: Path) -> list[dict[str, str]]:
    with open(path / "summary.csv") as fh:
        return list(csv.DictReader(fh))


def test_summary_matches_hand_computed_mean_se(reported_sweep: Path) -> None:
    rows = _summary_rows(reported_sweep)
    checked = 0
    for optim, rho in [("sgd", None), ("sam", 0.05), ("sam", 0.1)]:
        for metric in ("probe_acc_label", "probe_acc_other", "test_acc"):
            mean, se, n = _reference(optim, rho, metric)
            (row,) = [
                r
                for r in rows
                if r["optim.name"] == optim
                and r["metric"] == metric
                and (r["optim.rho"] == "" if rho is None else float(r["optim.rho"]) == rho)
            ]
            assert float(row["mean"]) == pytest.approx(mean, abs=1e-12)
            assert float(row["se"]) == pytest.approx(se, abs=1e-12)
            assert int(row["n"]) == n  # the failed ρ=0.1 run is not counted
            checked += 1
    assert checked == 9
    # Worst-group accuracy of SGD: min over groups per seed = 0.60, 0.65, 0.70 (conftest.group_metrics).
    (wga,) = [r for r in rows if r["optim.name"] == "sgd" and r["metric"] == "worst_group_acc"]
    assert float(wga["mean"]) == pytest.approx(0.65)
    assert float(wga["se"]) == pytest.approx(0.05 / math.sqrt(3))


def test_markdown_tables_show_formatted_cells_and_provenance(reported_sweep: Path) -> None:
    md = (reported_sweep / "report.md").read_text()
    mean, se, n = _reference("sam", 0.05, "probe_acc_other")
    assert f"| optim=sam, ρ=0.05 | {format_cell(*_reference('sam', 0.05, 'probe_acc_label'))} | " in md
    assert format_cell(mean, se, n) == "0.7100 ± 0.0153 (n=3)"
    assert "0.7100 ± 0.0153 (n=3)" in md
    for section in ("Feature quality", "In-distribution accuracy", "Group robustness", "Per-group accuracy"):
        assert section in md
    assert "train_weighted_mean_acc" in md and "worst_group_acc" in md
    assert COMMIT in md  # the git commit is named
    assert "Configuration" in md and "optim.lr: 0.05" in md  # the configs are named
    assert "group_acc/1 (a0b1)" in md  # group names from meta.json
    # SGD's inert ρ does not split its seeds into separate settings.
    sgd_rows = [line for line in md.splitlines() if line.startswith("| optim=sgd, ρ=— |")]
    assert len(sgd_rows) == 4  # four metric tables, one SGD row each
    run_rows = [line for line in md.splitlines() if "| optim=sgd, ρ=— |" in line and line not in sgd_rows]
    assert len(run_rows) == 3  # the runs table lists each SGD seed
    html = (reported_sweep / "report.html").read_text()
    assert "0.7100 ± 0.0153 (n=3)" in html and COMMIT in html and "<table>" in html


def test_figures_are_written_as_png_and_pdf(reported_sweep: Path) -> None:
    fake_sweep = reported_sweep
    for stem in ("probe_vs_rho", "probe_curves", "group_accuracy", "lorenz"):
        png = fake_sweep / "figures" / f"{stem}.png"
        pdf = fake_sweep / "figures" / f"{stem}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert pdf.read_bytes()[:5] == b"%PDF-"
    assert not [p for p in fake_sweep.iterdir() if p.name.startswith(".report-")]  # staging cleaned up


def test_single_run_report_has_no_standard_error(tmp_path: Path) -> None:
    run = write_run(tmp_path, "sam", 0.05, 1)
    with open(run / "results.jsonl", "a") as fh:
        fh.write('{"event": "eval", "metr')  # a torn last line (run killed mid-write) is ignored
    md = write_report(run).read_text()
    table_lines = [line for line in md.splitlines() if line.startswith("|")]
    assert "0.9500 (n=1)" in md and not any(" ± " in line for line in table_lines)
    rows = _summary_rows(run)
    assert {r["n"] for r in rows} == {"1"}
    assert (run / "figures" / "lorenz.png").exists()


def test_failure_while_drawing_leaves_no_partial_report(tmp_path: Path, monkeypatch) -> None:
    import samlens.report.figures as figures

    run = write_run(tmp_path, "sgd", None, 0)
    before = sorted(p.name for p in run.iterdir())
    calls = []

    def broken_save(fig, directory, stem):
        calls.append(stem)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real_save(fig, directory, stem)

    real_save = figures.save
    monkeypatch.setattr(figures, "save", broken_save)
    with pytest.raises(RuntimeError):
        write_report(run)
    assert sorted(p.name for p in run.iterdir()) == before


def test_report_skips_optional_figures(tmp_path: Path) -> None:
    run = write_run(tmp_path, "sgd", None, 0, epochs=1)
    lines = (run / "results.jsonl").read_text().splitlines()
    # Drop the lambda arrays and group accuracies: those figures must then be absent, not empty.
    import json

    events = [json.loads(x) for x in lines]
    for e in events:
        e["metrics"] = {k: v for k, v in e["metrics"].items() if k != "lambda" and k != "lambda_phantom"}
        e["metrics"] = {k: v for k, v in e["metrics"].items() if not k.startswith("group_acc/")}
    (run / "results.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    write_report(run)
    made = sorted(p.name for p in (run / "figures").iterdir()) if (run / "figures").exists() else []
    # One SGD run is no curve over ρ: no figure with a single point and no spread.
    assert made == []


@pytest.mark.parametrize("case", ["missing", "empty", "file"])
def test_bad_report_inputs_raise_one_line_errors(tmp_path: Path, case: str) -> None:
    target = tmp_path / "x"
    if case == "empty":
        target.mkdir()
    elif case == "file":
        target.write_text("not a dir")
    with pytest.raises(ConfigError) as err:
        write_report(target)
    assert "\n" not in str(err.value)
    if case == "empty":
        assert list(target.iterdir()) == []  # nothing half-written
