"""The paired sweep table: per-seed Δ vs SGD, its SE, seeds positive, failed fits, the ρ figure."""

import json
import math

import pytest

from samlens import rundir
from samlens.report import paired, rho_curve, write_report
from samlens.report.load import load_runs

# seed -> hard probe; SGD and SAM at rho 0.5 are paired by seed.
SGD = {0: 0.640, 1: 0.630, 2: 0.650}
SAM = {0: 0.660, 1: 0.625, 2: 0.680}
FLOOR, CEILING = 0.60, 0.80


def _run(root, name, config, metrics, epochs=()):
    d = root / name
    d.mkdir(parents=True)
    lines = [
        {"event": "probe", "step": e, "epoch": e, "metrics": {"probe_acc_label": v}, "config": config}
        for e, v in epochs
    ]
    lines.append({"event": "final", "step": 9, "epoch": 3, "metrics": metrics, "config": config})
    (d / rundir.RESULTS).write_text("".join(json.dumps(line) + "\n" for line in lines))
    (d / rundir.DONE).write_text("x\n")


def _sweep(root, sam1_loss=1.3):
    for s in SGD:
        base = {"optim.name": "sgd", "optim.rho": 0.05, "train.seed": s, "data.options.shuffle_easy": False}
        _run(
            root,
            f"sgd{s}",
            base,
            {"probe_acc_label": SGD[s], "probe_acc_other": 0.99, "train_loss": 0.05},
            [(1, SGD[s] - 0.02), (2, SGD[s])],
        )
        _run(
            root,
            f"sam{s}",
            {**base, "optim.name": "sam", "optim.rho": 0.5},
            {"probe_acc_label": SAM[s], "probe_acc_other": 0.98, "train_loss": 0.10},
            [(1, SAM[s]), (2, SAM[s])],
        )
        _run(
            root,
            f"sam1_{s}",
            {**base, "optim.name": "sam", "optim.rho": 1.0},
            {
                "probe_acc_label": 0.70 if s == 0 else 0.5,
                "probe_acc_other": 0.5,
                "train_loss": 0.2 if s == 0 else sam1_loss,
            },
        )
        _run(root, f"floor{s}", {**base, "headroom": "floor"}, {"probe_acc_label": FLOOR + 0.01 * (s - 1)})
        _run(
            root,
            f"ceil{s}",
            {**base, "data.options.shuffle_easy": True},
            {"probe_acc_label": CEILING, "train_loss": 0.3},
        )


def test_paired_delta_se_and_positive_count_match_a_hand_computation():
    # differences 0.020, -0.005, 0.030: mean 0.015, std (ddof 1) = sqrt(((.005)^2+(.02)^2+(.015)^2)/2)
    result = paired.paired_delta(SGD, {**SAM, 7: 0.9})  # seed 7 has no SGD pair: ignored
    sd = math.sqrt((0.005**2 + 0.020**2 + 0.015**2) / 2)
    assert result.delta.mean == pytest.approx(0.015)
    assert result.delta.se == pytest.approx(sd / math.sqrt(3))
    assert result.positive == 2 and result.delta.n == 3 and result.seeds == (0, 1, 2)


def test_failed_fit_is_marked_and_excluded_from_means(tmp_path):
    _sweep(tmp_path)
    _, runs = load_runs(tmp_path)
    (setting,) = paired.analyse(runs)
    rows = {r.label: r for r in setting.rows}
    assert set(rows) == {"untrained (floor)", "hard-only (ceiling)", "SGD", "SAM ρ=0.5", "SAM ρ=1"}
    big = rows["SAM ρ=1"]
    # seeds 1 and 2 end at loss 1.3 > 0.05 + 0.5: failed; only seed 0 (0.70) counts.
    assert big.failed == (1, 2) and big.hard.n == 1 and big.hard.mean == pytest.approx(0.70)
    assert big.delta.delta.n == 1 and big.delta.delta.mean == pytest.approx(0.70 - SGD[0])
    good = rows["SAM ρ=0.5"]
    assert good.failed == () and good.hard.mean == pytest.approx(sum(SAM.values()) / 3)
    assert good.fraction == pytest.approx((good.hard.mean - FLOOR) / (CEILING - FLOOR))
    table = paired.table_rows(setting)
    assert any("failed to fit: seed 1, 2; excluded" in cell for row in table for cell in row)
    # A loss within the margin is a fitted run and is averaged.
    assert not paired.failed_fit(0.5, 0.05) and paired.failed_fit(0.56, 0.05)
    assert paired.failed_fit(float("nan"), 0.05) and paired.failed_fit(1.2, None)


def test_report_writes_the_paired_table_rho_figure_and_delta_curves(tmp_path):
    _sweep(tmp_path / "runs")
    report = write_report(tmp_path / "runs", tmp_path / "report")
    text = report.read_text()
    assert "Paired comparison with SGD, per ρ" in text
    assert "+0.015 ± " in text and "2/3" in text
    assert (tmp_path / "report" / "figures" / "rho_curve.png").stat().st_size > 1000
    assert (tmp_path / "report" / "figures" / "delta_curves.png").is_file()
    csv = (tmp_path / "report" / "summary.csv").read_text()
    assert "paired_delta_probe_acc_label" in csv and "failed_fit" in csv
    _, runs = load_runs(tmp_path / "runs")
    fig = rho_curve.rho_curve(paired.analyse(runs))
    assert fig.axes[0].get_xscale() == "log"
