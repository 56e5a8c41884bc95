"""The toy study's variant axis: every SAM variant runs on the toy, and the paired table against SGD
is the per-seed difference with failed fits left out."""

from __future__ import annotations

import math

import pytest
import torch
import yaml

from samlens.reproduce.catalog import config_path, get_reproduction
from samlens.reproduce.toy import format_summary, paired_rows
from samlens.train.toy import TOY_OPTIMIZERS, TOY_VARIANTS, ToyConfig, _ToyOptimizer, run_one


def _record(name: str, seed: int, ratio: float, hard: float, loss: float) -> dict:
    return {"optimizer": name, "seed": seed, "final": {"ratio": ratio, "loss": loss, "probe": {"hard": hard}}}


def test_paired_rows_are_per_seed_differences_without_failed_fits():
    records = [
        _record("sgd", 0, 0.10, 0.90, 0.02),
        _record("sgd", 1, 0.20, 0.80, 0.03),
        _record("sgd", 2, 0.30, 0.85, 0.02),
        _record("sam", 0, 0.15, 0.91, 0.02),
        _record("sam", 1, 0.22, 0.79, 0.03),
        _record("sam", 2, 0.90, 0.99, 0.60),  # 0.58 nats above its SGD pair: failed to fit
    ]
    (row,) = paired_rows(records)
    assert row["optimizer"] == "sam" and row["failed_seeds"] == [2]
    diffs = [0.05, 0.02]
    mean = sum(diffs) / 2
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 1) / math.sqrt(2)
    assert row["ratio"]["delta"] == pytest.approx(mean) and row["ratio"]["se"] == pytest.approx(se)
    assert row["ratio"]["positive"] == 2 and row["ratio"]["n"] == 2
    assert row["probe_hard"]["delta"] == pytest.approx((0.01 - 0.01) / 2, abs=1e-12)
    assert row["probe_hard"]["positive"] == 1
    text = format_summary([], [row])
    assert "failed to fit: seeds [2]" in text and "(2/2 up)" in text


def test_paired_rows_single_seed_has_no_se_and_every_seed_failed_is_na():
    records = [_record("sgd", 0, 0.1, 0.9, 0.02), _record("gsam", 0, 0.2, 0.9, 0.02)]
    records += [_record("wsam", 0, 0.0, 0.5, 0.69)]
    rows = {r["optimizer"]: r for r in paired_rows(records)}
    assert rows["gsam"]["ratio"]["se"] is None and rows["gsam"]["ratio"]["n"] == 1
    assert rows["wsam"]["ratio"]["n"] == 0 and rows["wsam"]["failed_seeds"] == [0]
    assert "wsam" in format_summary([], list(rows.values()))
    assert paired_rows([_record("sam", 0, 0.1, 0.9, 0.02)]) == []  # no SGD: nothing to pair


@pytest.mark.parametrize("name", TOY_VARIANTS)
def test_every_variant_trains_the_toy_at_sam_radius(name):
    cfg = ToyConfig(steps=20, eval_every=10, n_probe=200, optimizers=(name,), seeds=(0,))
    record = run_one(cfg, name, 0)
    assert record["optimizer"] == name and math.isfinite(record["final"]["loss"])
    model = torch.nn.Linear(2, 1)
    opt = _ToyOptimizer(name, model, cfg, seed=3)
    assert all(group["rho"] == cfg.sam_rho for group in opt.opt.param_groups)
    if name == "random_sam":
        assert opt.opt.seed == 3  # the run's seed, so each seed draws its own directions


def test_relative_radius_follows_the_weights_for_a_variant():
    cfg = ToyConfig(steps=1, rho_mode="relative", optimizers=("gsam",), seeds=(0,))
    model = torch.nn.Linear(3, 1)
    opt = _ToyOptimizer("gsam", model, cfg, seed=0)
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,)).float()

    def closure():
        opt.opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x)[:, 0], y)
        loss.backward()
        return loss

    norm = math.sqrt(sum(float(p.detach().pow(2).sum()) for p in model.parameters()))
    opt.step(closure)
    group = opt.opt.param_groups[0]
    assert group["rho_max"] == pytest.approx(cfg.sam_rho * norm, rel=1e-6)


def test_the_toy_reproduction_runs_the_whole_variant_axis():
    options = yaml.safe_load(config_path(get_reproduction("toy")).read_text())["toy"]
    assert options["optimizers"] == list(TOY_OPTIMIZERS)
    assert ToyConfig().optimizers == ("sgd", "sam", "lsam", "iw", "lr")  # `samlens toy`'s default
