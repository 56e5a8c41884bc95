import numpy as np
import pytest
import torch

from samlens.errors import ConfigError
from samlens.probe import Features, extract_features, feature_cache_key
from samlens.probe.features import load_features


class TinyModel(torch.nn.Module):
    """features(x) = relu(Lx) + a counter of calls (to see whether the cache was used)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(6, 3)
        self.drop = torch.nn.Dropout(0.9)  # eval mode must switch it off
        self.head = torch.nn.Linear(3, 2)
        self.calls = 0

    def features(self, x):
        self.calls += 1
        return torch.relu(self.drop(self.lin(x.flatten(1))))

    def forward(self, x):
        return self.head(self.features(x))


class TinyDataset(torch.utils.data.Dataset):
    def __init__(self, n=10):
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(n, 1, 2, 3, generator=g)
        self.y = [i % 2 for i in range(n)]
        self.o = [(i // 2) % 2 for i in range(n)]

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i], {"other": self.o[i], "group": 2 * self.y[i] + self.o[i]}


def test_extract_features_matches_direct_computation_in_eval_mode():
    model, ds = TinyModel(), TinyDataset(10)
    model.train()
    feats = extract_features(model, ds, batch_size=3)
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        expected = model.features(ds.x).numpy()
    np.testing.assert_allclose(feats.features, expected, rtol=1e-6, atol=1e-7)
    assert feats.features.dtype == np.float32 and feats.labels.dtype == np.int64
    np.testing.assert_array_equal(feats.labels, ds.y)
    np.testing.assert_array_equal(feats.others, ds.o)
    np.testing.assert_array_equal(feats.groups, 2 * np.array(ds.y) + np.array(ds.o))


def test_cache_is_written_once_and_reused(tmp_path):
    model, ds = TinyModel(), TinyDataset(7)
    path = tmp_path / "cache" / f"{feature_cache_key(checkpoint='a.pt', split='val')}.npz"
    first = extract_features(model, ds, batch_size=4, cache_path=path)
    calls = model.calls
    assert path.exists() and not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    again = extract_features(model, ds, batch_size=4, cache_path=path)
    assert model.calls == calls  # loaded, not recomputed
    np.testing.assert_array_equal(again.features, first.features)
    np.testing.assert_array_equal(load_features(path).groups, first.groups)


def test_cache_key_is_stable_and_distinguishes_parts():
    k = feature_cache_key(checkpoint="run/ckpt.pt", dataset="waterbirds", split="val", transform="eval")
    assert k == feature_cache_key(
        transform="eval", split="val", dataset="waterbirds", checkpoint="run/ckpt.pt"
    )
    assert k != feature_cache_key(
        checkpoint="run/ckpt.pt", dataset="waterbirds", split="test", transform="eval"
    )
    # A fixed value: the key must not change between processes or releases silently.
    assert feature_cache_key(a=1) == "015abd7f5cc57a2dd94b7590"


def test_corrupt_cache_is_a_config_error(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"not an npz")
    with pytest.raises(ConfigError, match="cannot read feature cache"):
        extract_features(TinyModel(), TinyDataset(), cache_path=path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels": np.zeros(3)}, "labels has shape"),
        ({"features": np.zeros(4)}, "must be 2-D"),
        ({"features": np.array([[0.0], [np.nan], [1.0], [2.0]])}, "NaN or infinite values in 1 of 4 rows"),
        ({"groups": np.array([0, 1, 0.5, 1])}, "integer ids"),
    ],
)
def test_bad_features_are_config_errors(kwargs, message):
    base = {"features": np.zeros((4, 1)), "labels": np.zeros(4), "others": np.zeros(4), "groups": np.zeros(4)}
    with pytest.raises(ConfigError, match=message):
        Features(**{**base, **kwargs})
