import math
from importlib import resources

import pytest

from samlens.cli.demo import CAVEAT, HEADLINE_RHO, RHOS, decide, demo_configs, summarize
from samlens.cli.main import main
from samlens.report.paired import Paired, Row, Setting, Stat
from samlens.rundir import run_status
from samlens.train.config import derive_seed, flatten_config


def test_demo_configs_are_paired_and_the_ceiling_differs_only_in_the_data():
    cfgs = demo_configs(seed=3)
    assert set(cfgs) == {"sgd", "ceiling", *(f"sam_rho{r:g}" for r in RHOS)}
    sgd = cfgs["sgd"]
    for rho in RHOS:
        sam = cfgs[f"sam_rho{rho:g}"]
        assert sam.optim.name == "sam" and sam.optim.rho == rho and sgd.optim.name == "sgd"
        assert derive_seed(sgd) == derive_seed(sam)  # same initialisation and data order
        assert sgd.data == sam.data and sgd.train == sam.train
    ceiling, flat = flatten_config(cfgs["ceiling"]), flatten_config(sgd)
    assert ceiling.pop("data.options.shuffle_easy") is True
    assert {k: v for k, v in ceiling.items() if k != "name"} == {k: v for k, v in flat.items() if k != "name"}


def test_the_demo_config_ships_inside_the_package():
    assert (resources.files("samlens.cli") / "demo.yaml").is_file()
    assert demo_configs()["sgd"].train.epochs == 5 and HEADLINE_RHO in RHOS


def test_the_paired_interval_decides_the_wording():
    assert decide(0.020, 0.009) == "supports"  # 0.020 - 0.018 > 0
    assert decide(0.020, 0.011) == "inconclusive"
    assert decide(-0.030, 0.010) == "contradicts"  # -0.030 + 0.020 < 0
    assert decide(0.05, math.nan) == "inconclusive"  # one seed: no SE of the differences


def _row(label, kind, hard, rho=None, delta=None, fraction=float("nan"), failed=()):
    return Row(
        label,
        kind,
        rho,
        Stat(hard, 0.004, 3),
        Stat(0.99, 0.001, 3),
        Stat(0.05, 0.01, 3),
        delta,
        fraction,
        3,
        failed,
        kind if kind in ("floor", "ceiling", "baseline") else "treatment",
    )


def test_summary_table_and_sentence_from_a_paired_setting():
    setting = Setting(
        "",
        [
            _row("untrained (floor)", "floor", 0.61, fraction=0.0),
            _row("hard-only (ceiling)", "ceiling", 0.80, fraction=1.0),
            _row("SGD", "baseline", 0.64, fraction=0.158),
            _row("SAM ρ=0.2", "sam", 0.645, 0.2, Paired(Stat(0.005, 0.004, 3), 2, (0, 1, 2)), 0.184),
            _row("SAM ρ=0.5", "sam", 0.66, 0.5, Paired(Stat(0.020, 0.006, 3), 3, (0, 1, 2)), 0.263),
        ],
    )
    table, status, sentence = summarize(setting)
    assert "| SAM ρ=0.5 | 0.660 ± 0.004 | +0.020 ± 0.006 | 3/3 | 26% | 3/3 |" in table
    assert "| SGD | 0.640 ± 0.004 | – | – | 16% | 3/3 |" in table
    assert status == "supports"  # 0.020 - 2 x 0.006 > 0
    assert "[+0.008, +0.032]" in sentence and "16% → 26%" in sentence and CAVEAT in sentence
    assert sentence.count(".") >= 1 and "\n" not in sentence


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "1", "--seeds", "2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    table = [line for line in printed.splitlines() if line.startswith("| ") and "---" not in line]
    assert [row.split("|")[1].strip() for row in table[1:]] == [
        "untrained (floor)",
        "hard-only (ceiling)",
        "SGD",
        "SAM ρ=0.2",
        "SAM ρ=0.5",
    ]
    for seed in (0, 1):
        for name in ("floor", "sgd", "sam_rho0.2", "sam_rho0.5", "ceiling"):
            assert run_status(out / "runs" / f"seed{seed}" / name) == "done"
    words = ("supports", "contradicts", "inconclusive")
    verdicts = [line for line in printed.splitlines() if line.split(":")[0] in words]
    # One sentence about the headline radius; at 1 epoch SAM ρ=0.5 may not fit, which it must say.
    assert len(verdicts) == 1 and "ρ=0.5" in verdicts[0]
    report = (out / "report" / "report.md").read_text()
    assert "Paired comparison with SGD" in report
    # The ρ curve needs two fitted radii; a 1-epoch SAM at ρ 0.5 may not fit (and is then left out).
    if "No fitted" not in verdicts[0]:
        assert (out / "report" / "figures" / "rho_curve.png").is_file()


def test_bad_demo_arguments_are_one_line_errors(tmp_path, capsys):
    for argv, message in [
        (["--seeds", "0"], "--seeds must be in [1, inf), got 0"),
        (["--rho", "a,b"], "--rho must be comma-separated numbers"),
        (["--rho", "-1"], "must be in [0, inf)"),
        (["--workers", "0"], "--workers must be in [1, inf), got 0"),
    ]:
        assert main(["demo", "--out", str(tmp_path / "d"), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("samlens demo: error: ") and message in err, err
    assert not (tmp_path / "d").exists()


@pytest.mark.slow
def test_sam_vs_sgd_example_runs_under_a_minute():
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "examples" / "sam_vs_sgd.py"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-1000:]
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[1:]}
    assert set(rows) == {"sgd", "sam"}
    assert all(float(r[1]) > 0.9 for r in rows.values())  # real digits are learned by both
    assert elapsed < 60
