"""Frozen penultimate features of one split, extracted once and cached on disk."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from samlens.errors import ConfigError
from samlens.rundir import atomic_save, storage_error

_KEYS = ("features", "labels", "others", "groups")


@dataclass
class Features:
    """The frozen representation Φ_θ(x) of one split with its attributes.

    ``labels`` is attribute A (the training label), ``others`` attribute B and
    ``groups`` the group id (label · num_other + other). Arrays are coerced to
    float32 / int64 and checked on construction, so every probe can trust them.
    """

    features: np.ndarray
    labels: np.ndarray
    others: np.ndarray
    groups: np.ndarray

    def __post_init__(self) -> None:
        self.features = np.ascontiguousarray(self.features, dtype=np.float32)
        if self.features.ndim != 2:
            raise ConfigError(f"features must be 2-D [N, D], got shape {self.features.shape}")
        n = self.features.shape[0]
        for name in _KEYS[1:]:
            arr = np.asarray(getattr(self, name))
            if arr.ndim != 1 or len(arr) != n:
                raise ConfigError(f"{name} has shape {arr.shape} but features have {n} rows")
            integral = np.issubdtype(arr.dtype, np.integer) or np.all(np.equal(np.mod(arr, 1), 0))
            if not integral:
                raise ConfigError(f"{name} must hold integer ids")
            setattr(self, name, arr.astype(np.int64))
        if n == 0:
            raise ConfigError("features have zero rows")
        if not np.all(np.isfinite(self.features)):
            bad = int((~np.isfinite(self.features)).any(axis=1).sum())
            raise ConfigError(f"features contain NaN or infinite values in {bad} of {n} rows")

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def dim(self) -> int:
        return self.features.shape[1]

    def subset(self, index: np.ndarray) -> Features:
        """The rows ``index`` (integer indices or boolean mask) as a new Features."""
        return Features(self.features[index], self.labels[index], self.others[index], self.groups[index])

    def target(self, name: str) -> np.ndarray:
        """Attribute ``"label"`` (A) or ``"other"`` (B)."""
        if name == "label":
            return self.labels
        if name == "other":
            return self.others
        raise ConfigError(f"unknown probe target {name!r}; valid choices: label, other")


def check_same_dim(**splits: Features) -> None:
    """All splits must have the same feature dimension (they come from one model)."""
    dims = {name: f.dim for name, f in splits.items()}
    if len(set(dims.values())) > 1:
        raise ConfigError(f"feature dimensions differ between splits: {dims}")


def feature_cache_key(**parts: object) -> str:
    """A stable hash of whatever identifies a feature file (checkpoint, dataset, split, transform).

    Values are serialised as sorted JSON (non-JSON values through ``str``), so the key
    does not depend on argument order or on the Python process.
    """
    if not parts:
        raise ConfigError("feature_cache_key needs at least one part")
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def save_features(feats: Features, path: str | os.PathLike) -> None:
    """Write ``feats`` as an .npz file atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise storage_error(path, err, "nothing was written") from None
    atomic_save(path, lambda fh: np.savez(fh, **{k: getattr(feats, k) for k in _KEYS}))


def load_features(path: str | os.PathLike) -> Features:
    """Read a file written by :func:`save_features`."""
    try:
        with np.load(path) as data:
            missing = [k for k in _KEYS if k not in data]
            if missing:
                raise ConfigError(f"feature cache {path} lacks arrays {missing}")
            arrays = {k: data[k] for k in _KEYS}
    except ConfigError:
        raise
    except Exception as exc:  # a damaged .npz raises zip, zlib, EOF, value and OS errors alike
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise ConfigError(f"cannot read feature cache {path}: {detail}") from None
    _check_cache(path, arrays)
    return Features(**arrays)


def _check_cache(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Features N x D of real numbers, and N integer labels, others and groups: else one line."""
    feats = arrays["features"]
    if feats.ndim != 2 or feats.dtype.kind not in "fiu" or not np.isfinite(feats).all():
        raise ConfigError(
            f"feature cache {path}: features are {feats.shape} {feats.dtype}; expected N x D finite numbers"
        )
    for key in _KEYS[1:]:
        a = arrays[key]
        if a.ndim != 1 or len(a) != len(feats) or a.dtype.kind not in "iu":
            raise ConfigError(
                f"feature cache {path}: {key} is {a.shape} {a.dtype}; expected {len(feats)} integers"
            )


@torch.no_grad()
def extract_features(
    model: torch.nn.Module,
    dataset: torch.utils.data.Dataset,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    cache_path: str | os.PathLike | None = None,
) -> Features:
    """Penultimate features ``model.features(x)`` of every item of ``dataset``, in order.

    Items are ``(x, label, {"other": int, "group": int})``; the dataset should apply the
    eval transform. The model runs in eval mode without gradients and gets its previous
    mode back afterwards; it must already live on ``device``. With ``cache_path`` an
    existing file is loaded instead of recomputing, and a new one is written atomically;
    build the path from :func:`feature_cache_key` so a different checkpoint never hits it.
    """
    if cache_path is not None and Path(cache_path).exists():
        return load_features(cache_path)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    if len(dataset) == 0:
        raise ConfigError("cannot extract features of an empty dataset")
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    was_training = model.training
    model.eval()
    chunks, labels, others, groups = [], [], [], []
    try:
        for x, y, attrs in loader:
            chunks.append(model.features(x.to(device)).float().cpu())
            labels.append(torch.as_tensor(y))
            others.append(torch.as_tensor(attrs["other"]))
            groups.append(torch.as_tensor(attrs["group"]))
    finally:
        model.train(was_training)
    feats = Features(
        torch.cat(chunks).flatten(1).numpy(),
        torch.cat(labels).numpy(),
        torch.cat(others).numpy(),
        torch.cat(groups).numpy(),
    )
    if cache_path is not None:
        save_features(feats, cache_path)
    return feats
