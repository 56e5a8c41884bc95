"""CIFAR-10 python batches: a restricted unpickler, and mutated batches that either read as valid
data or raise DatasetFormatError naming the file."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from data_formats import cifar_image, write_cifar
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzing import mutate as _mutate
from samlens.data.real.cifar_batches import read_batch, read_cifar10
from samlens.errors import DatasetFormatError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def batch_bytes(tmp_path_factory) -> bytes:
    root = tmp_path_factory.mktemp("cifar")
    write_cifar(root, {"train": {1: 10, 9: 10}, "test": {1: 2, 9: 2}})
    return (root / "cifar-10-batches-py" / "data_batch_1").read_bytes()


def test_the_fixture_reads_back_exactly(tmp_path):
    write_cifar(tmp_path, {"train": {1: 6, 9: 5}, "test": {1: 3, 9: 3}})
    images, labels = read_cifar10(tmp_path, train=False, download=False)
    assert images.shape == (6, 32, 32, 3) and images.dtype == np.uint8
    assert labels.tolist() == [1, 1, 1, 9, 9, 9]
    # CIFAR's row layout (1024 R, 1024 G, 1024 B) becomes HWC: channel ch of class c is 20c + 5 + ch
    assert images[0, 3, 7].tolist() == [25, 26, 27] and images[3, 0, 0].tolist() == [185, 186, 187]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_every_pickle_protocol_of_numpy_arrays_loads(tmp_path, protocol):
    entry = {"data": np.stack([cifar_image(3), cifar_image(4)]), "labels": [3, 4], "batch_label": "x"}
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(entry, protocol=protocol))
    images, labels = read_batch(path)
    assert images.shape == (2, 32, 32, 3) and labels.tolist() == [3, 4]


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": _Payload(marker), "labels": []}, protocol=2))
    with pytest.raises(DatasetFormatError, match=r"data_batch_1 \(UnpicklingError: it names "):
        read_batch(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "entry, message",
    [
        ([1, 2], "not a dict with 'data' and 'labels'"),
        ({"data": np.zeros((2, 3072), np.float32), "labels": [0, 1]}, "'data' is (2, 3072) float32"),
        ({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, "'data' is (2, 100) uint8"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, True]}, "'labels' is not a list of integers"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, "1 labels for 2 images"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, -1]}, "label -1 out of range"),
    ],
)
def test_wrong_content_is_named(tmp_path, entry, message):
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps(entry, protocol=2))
    with pytest.raises(DatasetFormatError) as info:
        read_batch(path)
    assert message in str(info.value) and "\n" not in str(info.value)


@FUZZ
@given(data=st.data())
def test_mutated_batches_read_as_valid_data_or_one_error(batch_bytes, tmp_path_factory, data):
    path = tmp_path_factory.mktemp("mutated") / "data_batch_1"
    path.write_bytes(_mutate(batch_bytes, data.draw))
    try:
        images, labels = read_batch(path)
    except DatasetFormatError as err:
        assert "\n" not in str(err) and str(path.parent) in str(err)
        return
    assert images.dtype == np.uint8 and images.shape[1:] == (32, 32, 3)
    assert len(images) == len(labels) and (labels.size == 0 or (labels.min() >= 0 and labels.max() <= 9))
