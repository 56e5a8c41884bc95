"""BatchLoader yields the runner's batches, in order, identically for 0 and 2 worker processes."""

import numpy as np
import pytest
import torch
from data_formats import write_waterbirds
from PIL import Image

from samlens.data import get_dataset
from samlens.data.loading import BatchLoader, batch_seed
from samlens.train.distributed import DistContext
from samlens.train.reproducibility import epoch_batches

SINGLE = DistContext()


def reference_batches(view, batches):
    """The runner's decoding before BatchLoader: one item at a time in this process."""
    out = []
    for indices in batches:
        items = [view[i] for i in indices]
        out.append((torch.stack([item[0] for item in items]), torch.tensor([item[1] for item in items])))
    return out


def loaded(view, batches, workers, **kwargs):
    loader = BatchLoader(view, num_workers=workers)
    return list(loader.epoch(batches, **kwargs))


def assert_same(got, expected):
    assert len(got) == len(expected)
    for (x, y), (ex, ey) in zip(got, expected):
        assert x.dtype == ex.dtype and torch.equal(x, ex) and torch.equal(y, ey)


@pytest.fixture(scope="module")
def waterbirds_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("wb")
    write_waterbirds(root)
    rng = np.random.default_rng(0)
    for path in root.rglob("*.jpg"):  # textured images, so that crops and flips change pixels
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(path)
    return root


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_match_one_by_one_decoding(waterbirds_root, workers):
    ds = get_dataset("waterbirds", root=waterbirds_root, image_size=16, augment=False)
    view = ds.split("train", train=True)
    batches = epoch_batches(len(view), 4, seed=3, epoch=1, ctx=SINGLE)
    assert len(batches) == 3
    assert_same(loaded(view, batches, workers, seed=3, epoch=1), reference_batches(view, batches))


@pytest.mark.parametrize("workers", [0, 2])
def test_in_memory_dataset_batches_match(workers):
    ds = get_dataset("mnist5k_dominoes")
    view = ds.split("train", train=True)
    batches = epoch_batches(len(view), 64, seed=0, epoch=0, ctx=SINGLE)[:4]
    assert_same(loaded(view, batches, workers, seed=0, epoch=0), reference_batches(view, batches))


def test_augmentation_same_for_any_workers_and_after_a_resume(waterbirds_root):
    ds = get_dataset("waterbirds", root=waterbirds_root, image_size=16, augment=True)
    view = ds.split("train", train=True)
    batches = epoch_batches(len(view), 4, seed=5, epoch=2, ctx=SINGLE)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    zero = loaded(view, batches, 0, seed=5, epoch=2)
    assert torch.equal(torch.get_rng_state(), before)  # loading leaves the training RNG alone
    assert_same(loaded(view, batches, 2, seed=5, epoch=2), zero)
    # a resume after one batch: the remaining batches get the same augmentations
    assert_same(loaded(view, batches[1:], 2, seed=5, epoch=2, start=1), zero[1:])
    # the seed of a batch is the one its items were transformed with, in order
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(batch_seed(5, 2, 1))
        expected = reference_batches(view, batches[1:2])
    assert_same(zero[1:2], expected)
    # another epoch draws other augmentations
    other = loaded(view, batches, 0, seed=5, epoch=3)
    assert not torch.equal(other[0][0], zero[0][0])


def test_persistent_workers_serve_several_epochs(waterbirds_root):
    ds = get_dataset("waterbirds", root=waterbirds_root, image_size=16, augment=False)
    view = ds.split("train", train=True)
    loader = BatchLoader(view, num_workers=2)
    assert loader.loader.persistent_workers and not loader.loader.pin_memory
    for epoch in range(3):
        batches = epoch_batches(len(view), 4, seed=0, epoch=epoch, ctx=SINGLE)
        got = list(loader.epoch(batches, seed=0, epoch=epoch))
        assert_same(got, reference_batches(view, batches))


@pytest.mark.slow
def test_runs_with_0_and_2_workers_train_identical_weights(waterbirds_root, tmp_path):
    from samlens.rundir import load_checkpoint
    from samlens.train.config import derive_seed, load_config
    from samlens.train.runner import run_experiment

    def cfg(workers):
        return load_config(
            overrides={
                "data.name": "waterbirds",
                "data.root": str(waterbirds_root),
                "data.options": {"image_size": 16},  # augment=True: random crops and flips
                "data.batch_size": 4,
                "data.num_workers": workers,
                "model.name": "small_cnn",
                "model.options": {"width": 4},
                "train.epochs": 2,
                "train.deterministic": True,
                "probe.enabled": False,
            }
        )

    assert derive_seed(cfg(0)) == derive_seed(cfg(2))  # the worker count is not part of the seed
    states = []
    for workers in (0, 2):
        run_experiment(cfg(workers), tmp_path / f"w{workers}", quiet=True)
        states.append(load_checkpoint(tmp_path / f"w{workers}")["model"])
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key


def test_loading_leaves_the_cuda_generators_alone(monkeypatch):
    # torch.manual_seed would reseed every CUDA generator (outside fork_rng's restore) on each batch.
    calls = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: calls.append(seed))
    view = get_dataset("mnist5k_dominoes").split("train", train=True)
    batches = epoch_batches(len(view), 8, seed=0, epoch=0, ctx=SINGLE)[:2]
    assert len(loaded(view, batches, 0, seed=0, epoch=0)) == 2
    assert calls == []
