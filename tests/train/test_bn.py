"""BatchNorm running statistics recomputed before evaluation and probing (samlens.train.bn)."""

import copy

import pytest
import tests.train.train_tiny_data as tiny
import torch
from torch import nn

from samlens.data import get_dataset
from samlens.errors import ConfigError
from samlens.models import get_model
from samlens.train.bn import recompute_bn_stats
from samlens.train.config import load_config
from samlens.train.evaluate import evaluate
from samlens.train.probing import run_probe

CPU = torch.device("cpu")


def _stale_model(dataset) -> nn.Module:
    """A small CNN trained a few steps, with running statistics left far from the data's."""
    torch.manual_seed(0)
    model = get_model("small_cnn", 2, tuple(dataset.input_shape), width=8)
    split = dataset.split("train")
    x = torch.stack([split[i][0] for i in range(len(split))])
    y = torch.tensor([split[i][1] for i in range(len(split))])
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    with torch.no_grad():  # what a long-gone early phase of training leaves in the moving average
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.add_(3.0)
                m.running_var.mul_(20.0)
    return model


def _reference_recompute(model: nn.Module, dataset, batch: int = 16) -> nn.Module:
    """Exact average of the batch statistics over the train split, written out by hand."""
    model = copy.deepcopy(model)
    split = dataset.split("train")
    x = torch.stack([split[i][0] for i in range(len(split))])
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for start in range(0, len(x), batch):
            model(x[start : start + batch])
    for m in norms:
        m.momentum = 0.1
    model.eval()
    return model


@pytest.fixture(scope="module")
def data():
    return get_dataset(tiny.NAME, seed=1, n=96)


def test_recomputed_statistics_give_the_reference_loops_test_accuracy(data):
    stale = _stale_model(data)
    reference = _reference_recompute(stale, data, batch=256)
    as_is = evaluate(copy.deepcopy(stale), data, device=CPU, bn_stats="running")
    ref = evaluate(reference, data, device=CPU, bn_stats="running")
    got = evaluate(copy.deepcopy(stale), data, device=CPU, bn_stats="recompute")
    assert got["test_acc"] == ref["test_acc"] and got["val_acc"] == ref["val_acc"]
    assert got["test_loss"] == pytest.approx(ref["test_loss"], rel=1e-5)
    assert as_is["test_loss"] != pytest.approx(ref["test_loss"], rel=1e-2)  # the staleness mattered


def test_statistics_equal_the_exact_average_and_nothing_else_changes(data):
    stale = _stale_model(data)
    model = copy.deepcopy(stale)
    rng = torch.get_rng_state()
    assert recompute_bn_stats(model, data, batch_size=16)
    assert torch.equal(rng, torch.get_rng_state())  # no random numbers drawn
    reference = _reference_recompute(stale, data, batch=16)
    for (name, got), (_, want) in zip(model.state_dict().items(), reference.state_dict().items()):
        if name.endswith("num_batches_tracked"):
            continue
        assert torch.allclose(got, want, atol=1e-6), name
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert not recompute_bn_stats(model, data)  # same weights: nothing to redo
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    assert recompute_bn_stats(model, data)  # new weights: redone


def test_frozen_batchnorm_and_models_without_it_are_left_alone(data):
    class Frozen(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))

        def train(self, mode=True):
            super().train(mode)
            self.net[1].eval()
            return self

        def forward(self, x):
            return self.net(x)

    model = Frozen()
    before = model.net[1].running_mean.clone()
    assert not recompute_bn_stats(model, data)
    assert torch.equal(before, model.net[1].running_mean)
    assert not recompute_bn_stats(nn.Sequential(nn.Flatten(), nn.Linear(16, 2)), data)


def test_probe_reads_features_with_recomputed_statistics(data):
    stale = _stale_model(data)
    got = run_probe("balanced", copy.deepcopy(stale), data, bn_stats="recompute")
    want = run_probe("balanced", _reference_recompute(stale, data, batch=256), data, bn_stats="running")
    assert got["probe_acc_label"] == want["probe_acc_label"]
    assert got["probe_acc_other"] == want["probe_acc_other"]


def test_bn_stats_is_a_validated_config_option():
    assert load_config(None).train.bn_stats == "recompute"
    assert load_config(None, {"train.bn_stats": "running"}).train.bn_stats == "running"
    with pytest.raises(ConfigError, match="unknown train.bn_stats 'nope'; valid choices: recompute, running"):
        load_config(None, {"train.bn_stats": "nope"})
