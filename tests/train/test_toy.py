import json

import pytest

from samlens.cli.main import main
from samlens.errors import ConfigError
from samlens.train.toy import ToyConfig, mean_se, ratio_at_loss


def test_ratio_at_loss_interpolates_in_log_loss():
    history = {"loss": [0.8, 0.4, 0.1], "ratio": [0.0, 1.0, 3.0]}
    out = ratio_at_loss(history, levels=(0.4, 0.2, 0.05))
    assert out["0.4"] == pytest.approx(1.0)
    assert out["0.2"] == pytest.approx(2.0)  # log 0.2 is halfway between log 0.4 and log 0.1
    assert "0.05" not in out  # never reached


def test_mean_se():
    assert mean_se([1.0, 3.0]) == pytest.approx((2.0, 1.0))
    assert mean_se([5.0]) == (5.0, 0.0)


def test_config_validation_and_cli_error(capsys):
    with pytest.raises(ConfigError):
        ToyConfig(optimizers=("adam",))
    with pytest.raises(ConfigError):
        ToyConfig(batch_size=10, n_train=5)
    assert main(["toy", "--seeds", "0", "--out", "unused"]) == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.slow
def test_reduced_toy_shows_sam_and_lsam_raise_hard_feature_at_end_of_training(tmp_path):
    """Reduced default toy (3 seeds, SGD/SAM/LSAM): at the end of training SAM and LSAM have a larger
    |β_hard|/|β_easy| than SGD in every seed, and Gini(λ̃, LSAM) < Gini(λ, SGD) in every seed."""
    out = tmp_path / "toy"
    rc = main(["toy", "--seeds", "3", "--optimizers", "sgd,sam,lsam", "--out", str(out)])
    assert rc == 0
    for name in ("results.jsonl", "summary.json", "ratio_vs_step.png", "lorenz.pdf", "probe_accuracy.png"):
        assert (out / name).exists()
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 9
    assert all(r["history"]["step"][-1] == 600 for r in records)
    rows = {r["optimizer"]: r for r in json.loads((out / "summary.json").read_text())["summary"]}
    # measured with 5 seeds at step 600: SGD 0.065 ± 0.005, SAM 0.099 ± 0.007, LSAM 0.123 ± 0.006
    assert rows["sam"]["ratio"][0] > 1.3 * rows["sgd"]["ratio"][0]
    assert rows["lsam"]["ratio"][0] > 1.5 * rows["sgd"]["ratio"][0]
    final = {(r["optimizer"], r["seed"]): r["final"] for r in records}
    for s in range(3):
        assert final[("sam", s)]["ratio"] > final[("sgd", s)]["ratio"]
        assert final[("lsam", s)]["ratio"] > final[("sgd", s)]["ratio"]
        # measured with 5 seeds: 0.862 ± 0.013 (λ̃, LSAM) vs 0.903 ± 0.011 (λ, SGD)
        assert final[("lsam", s)]["gini_lambda_phantom"] < final[("sgd", s)]["gini_lambda"] - 0.01
