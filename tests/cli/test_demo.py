import pytest
import yaml

from samlens.cli.demo import DEFAULTS, DEMO_CONFIG, demo_configs, summarize
from samlens.cli.main import main
from samlens.report.verdict import Estimate, binomial_se, estimate, judge
from samlens.rundir import read_results, run_status
from samlens.train.config import derive_seed, flatten_config


def test_demo_configs_are_paired_and_the_ceiling_differs_only_in_the_data():
    cfgs = demo_configs(seed=3)
    assert cfgs["sgd"].optim.name == "sgd" and cfgs["sam"].optim.name == "sam"
    assert derive_seed(cfgs["sgd"]) == derive_seed(cfgs["sam"])
    assert cfgs["sgd"].data == cfgs["sam"].data and cfgs["sgd"].train == cfgs["sam"].train
    ceiling, sgd = flatten_config(cfgs["ceiling"]), flatten_config(cfgs["sgd"])
    assert ceiling.pop("data.options.shuffle_easy") is True
    assert {k: v for k, v in ceiling.items() if k != "name"} == {k: v for k, v in sgd.items() if k != "name"}


def test_builtin_defaults_equal_the_demo_config_file():
    flat = flatten_config(demo_configs()["sgd"])
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    for key, value in DEFAULTS.items():
        if key == "name":
            assert data["name"] == value
        elif isinstance(value, dict):
            assert all(flat[f"{key}.{k}"] == v for k, v in value.items()), key
        else:
            assert flat[key] == value, key


def _finals(values, n_test=400):
    return [
        {"probe_acc_label": v, "probe_acc_other": 0.99, "test_acc": 0.9, "n_test": n_test} for v in values
    ]


def test_summary_table_has_four_rows_and_the_verdict_matches_the_numbers():
    cfgs = demo_configs()
    finals = {
        "floor": _finals([0.70, 0.72, 0.71]),
        "ceiling": _finals([0.90, 0.92, 0.91]),
        "sgd": _finals([0.75, 0.77, 0.76]),
        "sam": _finals([0.80, 0.84, 0.82]),
    }
    table, verdict = summarize(finals, cfgs)
    rows = [line for line in table.splitlines()[2:]]
    assert [r.split("|")[1].strip() for r in rows] == [
        "untrained (floor)",
        "hard-only (ceiling)",
        "SGD",
        f"SAM ρ={cfgs['sam'].optim.rho:g}",
    ]
    assert "| SGD | 0.760 ± 0.006 | 25% |" in table  # (0.76 − 0.71) / (0.91 − 0.71)
    assert "| untrained (floor) | 0.710 ± 0.006 | 0% |" in table
    want = judge(
        estimate([0.70, 0.72, 0.71]),
        estimate([0.90, 0.92, 0.91]),
        estimate([0.75, 0.77, 0.76]),
        estimate([0.80, 0.84, 0.82]),
        treatment_name=f"SAM ρ={cfgs['sam'].optim.rho:g}",
    )
    assert verdict == want and verdict.status == "reproduces"


def test_one_seed_uses_the_binomial_se():
    finals = {
        k: _finals([v], n_test=400)
        for k, v in [("floor", 0.9), ("ceiling", 0.93), ("sgd", 0.91), ("sam", 0.92)]
    }
    table, verdict = summarize(finals, demo_configs())
    se = binomial_se(0.91, 400)
    assert f"| SGD | 0.910 ± {se:.3f} |" in table and "binomial SE" in table
    # range 0.03 < 3 × 0.0143: the claim cannot be tested with one seed of these numbers
    assert verdict.status == "cannot test the claim"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "1", "--seeds", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    table = [line for line in printed.splitlines() if line.startswith("| ") and "---" not in line]
    assert [row.split("|")[1].strip() for row in table[1:]] == [
        "untrained (floor)",
        "hard-only (ceiling)",
        "SGD",
        "SAM ρ=0.2",
    ]
    finals = {}
    for name in ("floor", "sgd", "sam", "ceiling"):
        run_dir = out / "runs" / "seed0" / name
        assert run_status(run_dir) == "done"
        final = [e for e in read_results(run_dir) if e["event"] == "final"][-1]["metrics"]
        assert 0.5 <= final["probe_acc_label"] <= 1 and 0.5 <= final["probe_acc_other"] <= 1
        finals[name] = Estimate(
            final["probe_acc_label"], binomial_se(final["probe_acc_label"], final["n_test"]), 1
        )
    # The sentence is the verdict module's on the recorded numbers.
    want = judge(finals["floor"], finals["ceiling"], finals["sgd"], finals["sam"], treatment_name="SAM ρ=0.2")
    assert f"{want.status}: {want.sentence}" in printed
    report = (out / "report" / "report.md").read_text()
    assert "Headroom" in report and (out / "report" / "figures" / "headroom.png").is_file()


def test_bad_demo_arguments_are_one_line_errors(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--seeds", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "samlens demo: error: --seeds must be >= 1, got 0"
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
