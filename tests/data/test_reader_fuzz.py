"""Mutated copies of the format-exact fixtures: each reader returns a valid dataset or DatasetFormatError."""

import gzip
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from data_formats import write_celeba, write_waterbirds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzing import mutate as _mutate
from samlens.data import get_dataset
from samlens.errors import ConfigError, DatasetFormatError

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module", params=[False, True], ids=["txt", "csv"])
def celeba_fixture(request, tmp_path_factory) -> tuple[Path, bool]:
    root = tmp_path_factory.mktemp("celeba")
    write_celeba(root, csv=request.param)
    return root, request.param


def _valid_celeba(ds) -> None:
    for split in ("train", "val", "test"):
        part = getattr(ds, split, None)
        if part is None:
            continue
        labels = np.asarray(part.labels)
        assert set(np.unique(labels).tolist()) <= {0, 1}


@FUZZ
@given(data=st.data())
def test_celeba_mutated_files(celeba_fixture, tmp_path_factory, data):
    src, csv = celeba_fixture
    name = data.draw(st.sampled_from(["list_attr_celeba", "list_eval_partition"]))
    name += ".csv" if csv else ".txt"
    root = tmp_path_factory.mktemp("mut")
    for f in (n for n in src.iterdir() if n.is_file()):
        shutil.copy(f, root / f.name)
    (root / "img_align_celeba").symlink_to(src / "img_align_celeba")
    (root / name).write_bytes(_mutate((src / name).read_bytes(), data.draw))
    try:
        ds = get_dataset("celeba", root=root, image_size=16)
    except DatasetFormatError as err:
        assert "\n" not in str(err)
        return
    except ConfigError as err:  # a mutated header can drop the chosen target/other column
        assert "is not a column of" in str(err) and "\n" not in str(err)
        return
    _valid_celeba(ds)


def test_celeba_attribute_outside_used_columns_is_rejected(tmp_path):
    write_celeba(tmp_path)
    path = tmp_path / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    fields = lines[3].split()
    fields[1] = "0"  # first attribute column, neither target nor other
    lines[3] = " ".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match="line 4 has attribute value '0'"):
        get_dataset("celeba", root=tmp_path, image_size=16)


@pytest.fixture(scope="module")
def waterbirds_fixture(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("waterbirds")
    write_waterbirds(root)
    return root


@FUZZ
@given(data=st.data())
def test_waterbirds_mutated_metadata(waterbirds_fixture, tmp_path_factory, data):
    root = tmp_path_factory.mktemp("wb")
    for child in waterbirds_fixture.iterdir():
        if child.is_dir():
            (root / child.name).symlink_to(child)
    meta = (waterbirds_fixture / "metadata.csv").read_bytes()
    (root / "metadata.csv").write_bytes(_mutate(meta, data.draw))
    try:
        ds = get_dataset("waterbirds", root=root, image_size=16)
    except DatasetFormatError as err:
        assert "\n" not in str(err)
        return
    total = 0
    for split in ("train", "val", "test"):
        labels, others = ds.labels(split), ds.others(split)
        assert set(labels.tolist()) <= {0, 1} and set(others.tolist()) <= {0, 1}
        total += len(labels)
    # Blank lines (a leading one too) are skipped before the header, as a CSV reader does.
    # Only \r and \n end a CSV line (str.splitlines also splits at \v, \f, ...).
    text = (root / "metadata.csv").read_text()
    lines = [n for n in re.split(r"\r\n|\r|\n", text) if n.strip()]
    rows = [n.split(",") for n in lines[1:]]
    assert total == len(rows)
    assert len({row[1] for row in rows}) == len(rows)  # no image twice


@FUZZ
@given(data=st.data(), gz=st.booleans())
def test_idx_mutated_bytes(tmp_path_factory, data, gz):
    from samlens.data.idx import read_idx, write_idx

    folder = tmp_path_factory.mktemp("idx")
    path = folder / ("x.idx.gz" if gz else "x.idx")
    write_idx(path, np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))
    path.write_bytes(_mutate(path.read_bytes(), data.draw))
    try:
        array = read_idx(path, 3)
    except DatasetFormatError as err:
        assert "\n" not in str(err)
        return
    assert array.ndim == 3 and array.dtype == np.uint8
    header = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    assert array.shape == tuple(int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(3))
