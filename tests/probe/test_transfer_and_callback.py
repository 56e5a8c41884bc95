import numpy as np
import pytest
import torch
from synthetic import make_features, phi

from samlens.errors import ConfigError
from samlens.probe import ProbeCallback, transfer_probe


def test_transfer_probe_accuracy_matches_theory():
    # Held-out domain where the label shifts one feature by ±1: Bayes accuracy Φ(1) ≈ 0.841.
    domain = make_features(3000, mu_a=1.0, mu_b=0.0, seed=11)
    r = transfer_probe(domain, fraction=0.5, seed=0)
    assert r["n_train"] == 1500 and r["n_test"] == 1500
    assert abs(r["probe_acc"] - phi(1.0)) < 0.03  # ~3 binomial standard errors
    assert r == transfer_probe(domain, fraction=0.5, seed=0)  # deterministic for a seed


def test_transfer_probe_fraction_and_split_errors():
    domain = make_features(40, seed=1)
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        transfer_probe(domain, fraction=1.0)
    single = domain.subset(domain.labels == 0)
    with pytest.raises(ConfigError, match="single class"):
        transfer_probe(single)


class FeatureModel(torch.nn.Module):
    """features(x) = x scaled by a learnable gain on the second coordinate."""

    def __init__(self):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor([1.0, 0.0, 1.0]))
        self.head = torch.nn.Linear(3, 2)

    def features(self, x):
        return x * self.gain

    def forward(self, x):
        return self.head(self.features(x))


class ArrayDataset(torch.utils.data.Dataset):
    def __init__(self, feats):
        self.f = feats

    def __len__(self):
        return len(self.f)

    def __getitem__(self, i):
        x = torch.tensor(self.f.features[i, :3])
        return x, int(self.f.labels[i]), {"other": int(self.f.others[i]), "group": int(self.f.groups[i])}


def test_probe_callback_schedules_and_tracks_feature_quality():
    # Attribute B lives in coordinate 1 (shift ±2); the model starts by zeroing it out.
    train_ds = ArrayDataset(make_features(600, dim=3, mu_a=3.0, mu_b=2.0, seed=21))
    test_ds = ArrayDataset(make_features(600, dim=3, mu_a=3.0, mu_b=2.0, seed=22))
    model = FeatureModel()
    cb = ProbeCallback(train_ds, test_ds, every=2, batch_size=128)
    assert cb(model, 1) is None and cb(model, 3) is None
    before = cb(model, 2)
    assert before["epoch"] == 2
    assert before["probe_acc_other"] < 0.6  # B erased: chance
    with torch.no_grad():
        model.gain[1] = 1.0  # "training" makes B visible
    after = cb(model, 4)
    assert after["probe_acc_other"] > 0.9  # Φ(2) ≈ 0.977
    assert after["probe_acc_label"] > 0.98 and before["probe_acc_label"] > 0.98
    assert model.training


def test_probe_callback_rejects_bad_schedule():
    with pytest.raises(ConfigError, match="positive"):
        ProbeCallback([], [], every=0)


def test_result_is_json_serialisable():
    import json

    r = transfer_probe(make_features(200, seed=3), seed=1)
    assert json.loads(json.dumps(r))["n_test"] == 100
    assert np.isfinite(r["probe_acc"])
