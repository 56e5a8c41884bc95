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
