import pytest

from samlens.cli.demo import comparison_table, demo_configs
from samlens.cli.main import main
from samlens.train.config import derive_seed
from samlens.train.rundir import read_results, run_status


def test_demo_configs_are_paired():
    cfgs = demo_configs(seed=3)
    assert cfgs["sgd"].optim.name == "sgd" and cfgs["sam"].optim.name == "sam"
    assert derive_seed(cfgs["sgd"]) == derive_seed(cfgs["sam"])
    assert cfgs["sgd"].data == cfgs["sam"].data and cfgs["sgd"].train == cfgs["sam"].train


def test_comparison_table():
    table = comparison_table({"sgd": {"probe_acc_label": 0.5}, "sam": {"probe_acc_label": 0.75}})
    assert "| metric | SGD | SAM |" in table and "| 0.500 | 0.750 |" in table


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "probe accuracy, label feature" in printed and "| metric | SGD | SAM |" in printed
    for name in ("sgd", "sam"):
        run_dir = out / "runs" / name
        assert run_status(run_dir) == "done"
        final = [e for e in read_results(run_dir) if e["event"] == "final"][-1]["metrics"]
        assert 0.5 <= final["probe_acc_label"] <= 1 and 0.5 <= final["probe_acc_other"] <= 1
    assert any(out.rglob("report.md"))


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
