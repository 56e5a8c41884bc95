import pytest
import torch

from samlens.data.toy import EASY, HARD, ToyData
from samlens.errors import ConfigError


def test_moments_and_fraction_without_easy_feature():
    spec = ToyData(mu_easy=2.0, sigma_easy=0.1, mu_hard=0.5, sigma_hard=0.2, noise_dims=3, q=0.25)
    d = spec.sample(40_000, seed=0)
    s = 2.0 * d["y"] - 1
    assert d["x"].shape == (40_000, 5)
    has = d["strength"] > 0
    assert (~has).float().mean().item() == pytest.approx(0.25, abs=0.01)
    assert (s * d["x"][:, EASY])[has].mean().item() == pytest.approx(2.0, abs=0.01)
    assert (s * d["x"][:, EASY])[~has].mean().item() == pytest.approx(0.0, abs=0.01)
    assert (s * d["x"][:, HARD]).mean().item() == pytest.approx(0.5, abs=0.01)
    assert d["x"][:, HARD].var().item() == pytest.approx(0.25 + 0.04, abs=0.01)
    assert d["x"][:, 2:].std().item() == pytest.approx(0.3, abs=0.01)


def test_spread_and_independent_labels_and_determinism():
    spec = ToyData(easy_spread=0.5, sigma_easy=0.0)
    d = spec.sample(20_000, seed=3, independent=True)
    assert d["strength"].min() >= 0.5 and d["strength"].max() <= 1.5
    agree = (d["y_easy"] == d["y"]).float().mean().item()
    assert agree == pytest.approx(0.5, abs=0.02)
    assert torch.equal((d["x"][:, EASY] > 0).long(), d["y_easy"])
    assert torch.equal(spec.sample(5, seed=1)["x"], spec.sample(5, seed=1)["x"])


def test_invalid():
    with pytest.raises(ConfigError):
        ToyData(q=1.5)
    with pytest.raises(ConfigError):
        ToyData().sample(0, seed=0)
