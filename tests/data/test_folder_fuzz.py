"""Mutated DomainBed image trees and ColoredMNIST IDX files: each loader returns a valid dataset (checked
against the files on disk) or raises one error with a one-line message naming the path."""

from __future__ import annotations

import errno
import gzip
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from data_formats import PACS_CLASSES, PACS_DOMAINS, tiny_image, write_idx, write_mnist, write_pacs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzing import mutate
from samlens.data import get_dataset
from samlens.errors import ConfigError, DatasetFormatError

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# Names a user's tree can hold: a case or whitespace variant, a hidden name, non-ASCII, bytes that are not
# UTF-8 (\udcff), control characters and separators that would break a one-line message.
ODD_NAMES = ["Dog", "dog ", ".hidden", "éléphant", "a" * 255, "-", "d\nog", "\udcff", "a\u2028b", "t\tab"]
IMAGE_NAMES = ["pic.JPG", "pic.txt", "pic", ".pic.jpg", "p\rc.jpg", "\udcfe.png", "pic.jpg.txt"]
JUNK_NAMES = ["notes.txt", ".DS_Store", "Thumbs.db", "x.jpg.txt"]


def _one_line(err: Exception, root: Path) -> None:
    message = str(err)
    assert len(message.splitlines()) == 1, message
    assert str(root) in message, message
    message.encode("utf-8")  # printable: a name that is not UTF-8 is shown escaped


# ------------------------------------------------------------------------------------------------ DomainBed
@pytest.fixture(scope="module")
def pacs_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pacs")
    write_pacs(root, dict.fromkeys(PACS_DOMAINS, 1))
    return root


def _pick(draw, folder: Path, dirs: bool) -> Path | None:
    """A real (not linked) folder or file in ``folder``, if it has one."""
    if not folder.is_dir() or folder.is_symlink():
        return None
    kind = Path.is_dir if dirs else Path.is_file
    entries = sorted(p for p in folder.iterdir() if kind(p) and not p.is_symlink())
    return draw(st.sampled_from(entries)) if entries else None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _mutate_tree(folder: Path, draw) -> None:
    """One change to PACS/<domain>/<class>/<image>: the domain level, the class level or one image."""
    op = draw(
        st.sampled_from(
            ["drop_domain", "rename_domain", "domain_as_file", "extra_domain", "drop_class", "rename_class",
             "extra_class", "empty_class", "class_as_file", "image_as_dir", "junk_file", "corrupt_image",
             "rename_image", "nested_image", "symlink_loop", "broken_link", "fifo"]
        )
    )  # fmt: skip
    domain = _pick(draw, folder, dirs=True)
    if domain is None:
        return
    if op == "drop_domain":
        return _remove(domain)
    if op == "rename_domain":
        target = folder / draw(st.sampled_from(ODD_NAMES + ["Sketch", "clipart"]))
        return None if target.exists() else domain.rename(target)
    if op == "domain_as_file":
        _remove(domain)
        return domain.write_bytes(b"not a folder")
    if op == "extra_domain":
        return tiny_image(
            folder / draw(st.sampled_from(["clipart", "__MACOSX", ".git"])) / "dog" / "a.jpg", 1
        )
    # A class-level change hits one domain or, as a consistent rename would, every domain.
    every = draw(st.booleans())
    domains = sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()) if every else [domain]
    name = draw(st.sampled_from(ODD_NAMES + list(PACS_CLASSES)))
    same = draw(st.sampled_from(PACS_CLASSES))
    for d in domains:
        cls = d / same if every else _pick(draw, d, dirs=True)
        if op == "extra_class":
            (d / name).mkdir(exist_ok=True)
            if draw(st.booleans()):
                tiny_image(d / name / "new.png", 7)
            continue
        if op == "junk_file":
            target = draw(st.sampled_from([folder, d] + ([cls] if cls is not None and cls.is_dir() else [])))
            (target / draw(st.sampled_from(JUNK_NAMES))).write_bytes(b"\x00junk")
            continue
        if cls is None or not cls.is_dir():
            continue
        image = _pick(draw, cls, dirs=False)
        if op == "drop_class":
            _remove(cls)
        elif op == "rename_class":
            if not (d / name).exists():
                cls.rename(d / name)
        elif op == "empty_class":
            for child in list(cls.iterdir()):
                _remove(child)
        elif op == "class_as_file":
            _remove(cls)
            cls.write_bytes(b"\xff\xd8 not a folder")
        elif op == "symlink_loop":
            target = draw(st.sampled_from([".", "..", str(d), "loop"]))
            (cls / "loop").symlink_to(target)
        elif op == "broken_link":
            (cls / "gone.jpg").symlink_to(cls / "missing.jpg")
        elif op == "fifo":
            os.mkfifo(cls / "pipe.jpg")
        elif image is None:
            continue
        elif op == "image_as_dir":
            image.unlink()
            image.mkdir()
            if draw(st.booleans()):
                tiny_image(image / "inner.jpg", 3)
        elif op == "corrupt_image":
            image.write_bytes(mutate(image.read_bytes(), draw))
        elif op == "rename_image":
            image.rename(cls / draw(st.sampled_from(IMAGE_NAMES)))
        elif op == "nested_image":
            (cls / "sub").mkdir(exist_ok=True)
            image.rename(cls / "sub" / image.name)


def _images_on_disk(folder: Path) -> int:
    """Regular image files under PACS/<domain>/<class>/ (no links followed), counted independently."""
    n = 0
    for domain in PACS_DOMAINS:
        for top, _, files in os.walk(folder / domain):
            if Path(top) == folder / domain:
                continue
            n += sum(
                f.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(os.path.join(top, f)) for f in files
            )
    return n


def _check_domainbed(ds, folder: Path, root: Path) -> None:
    assert ds.num_classes == len(ds.class_names) == len(PACS_CLASSES)
    assert ds.other_names == list(PACS_DOMAINS) and ds.num_other == len(PACS_DOMAINS)
    seen: set[str] = set()
    for split in ("train", "val", "test", "test_out"):
        data = ds._get(split)
        for path, label, other in zip(data.images.paths, data.labels, data.others):
            # Every image lies in the folder of its own domain and class, and is listed once.
            Path(path).relative_to(folder / ds.other_names[other] / ds.class_names[label])
            assert os.path.isfile(path) and os.path.realpath(path) not in seen
            seen.add(os.path.realpath(path))
        view = ds.split(split)
        for i in range(len(view)):
            try:
                image, label, attrs = view[i]
            except DatasetFormatError as err:
                _one_line(err, root)
                continue
            assert image.shape == (3, 8, 8) and label == data.labels[i]
    assert len(seen) == _images_on_disk(folder)
    probe = len(ds.labels("probe_train")) + len(ds.labels("probe_test"))
    assert probe == len(ds.labels("val")) + len(ds.labels("test_out"))


@FUZZ
@given(data=st.data())
def test_domainbed_mutated_trees(pacs_tree, tmp_path_factory, data):
    root = tmp_path_factory.mktemp("tree")
    shutil.copytree(pacs_tree / "PACS", root / "PACS")
    for _ in range(data.draw(st.integers(1, 3))):
        try:
            _mutate_tree(root / "PACS", data.draw)
        except OSError as err:  # the name an earlier change took: that part of the change is skipped
            assert err.errno in (errno.EEXIST, errno.ENOTEMPTY), err
    test_domain = data.draw(st.sampled_from(list(PACS_DOMAINS) + ["clipart"]))
    try:
        ds = get_dataset("domainbed", root=root, test_domain=test_domain, image_size=8)
    except DatasetFormatError as err:
        _one_line(err, root)
        return
    except ConfigError as err:
        assert test_domain not in PACS_DOMAINS and str(err).startswith("test_domain 'clipart'")
        return
    _check_domainbed(ds, root / "PACS", root)


@pytest.mark.parametrize("target", [".", ".."])
def test_a_symlink_loop_in_a_class_folder_is_one_error(tmp_path, target):
    write_pacs(tmp_path, dict.fromkeys(PACS_DOMAINS, 1))
    (tmp_path / "PACS" / "photo" / "dog" / "loop").symlink_to(target)
    with pytest.raises(
        DatasetFormatError, match=r"photo/dog/loop: folder reached twice, also as .*symlink loop"
    ):
        get_dataset("domainbed", root=tmp_path)


@pytest.mark.parametrize("where", ["photo", "photo/dog"])
def test_a_link_to_itself_or_a_pipe_named_as_an_image_is_one_error(tmp_path, where):
    write_pacs(tmp_path, dict.fromkeys(PACS_DOMAINS, 1))
    (tmp_path / "PACS" / where / "self").symlink_to("self")  # ELOOP: neither a folder nor a file
    os.mkfifo(tmp_path / "PACS" / "photo" / "dog" / "pipe.jpg")  # opening it would block
    with pytest.raises(DatasetFormatError) as err:
        get_dataset("domainbed", root=tmp_path)
    pipe = tmp_path / "PACS" / "photo" / "dog" / "pipe.jpg"
    assert str(err.value) == f"{pipe}: not a regular file (a broken link or a pipe); expected an image"


def test_an_image_name_that_would_break_the_message_is_refused(tmp_path):
    write_pacs(tmp_path, dict.fromkeys(PACS_DOMAINS, 1))
    cls = tmp_path / "PACS" / "cartoon" / "horse"
    next(cls.iterdir()).rename(cls / "a\nb.jpg")
    with pytest.raises(DatasetFormatError) as err:
        get_dataset("domainbed", root=tmp_path)
    assert (
        str(err.value)
        == f"{cls}: name 'a\\nb.jpg' holds a control character or bytes that are not UTF-8; rename it"
    )


def test_class_folders_that_differ_are_named(tmp_path):
    write_pacs(tmp_path, dict.fromkeys(PACS_DOMAINS, 1))
    (tmp_path / "PACS" / "sketch" / "dog").rename(tmp_path / "PACS" / "sketch" / "Dog")
    with pytest.raises(DatasetFormatError) as err:
        get_dataset("domainbed", root=tmp_path)
    assert str(err.value) == (
        f"{tmp_path / 'PACS' / 'sketch'}: class folders differ from {tmp_path / 'PACS' / 'art_painting'} "
        "(missing 'dog'; extra 'Dog')"
    )


# ------------------------------------------------------------------------------------------- ColoredMNIST
NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}  # fmt: skip


def _read(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


def _header_dims(path: Path) -> tuple[int, ...]:
    raw = _read(path)
    return struct.unpack(f">{raw[3]}I", raw[4 : 4 + 4 * raw[3]])


def _mutate_mnist(folder: Path, suffix: str, draw) -> None:
    split = draw(st.sampled_from(["train", "test"]))
    images_path, labels_path = (folder / (n + suffix) for n in NAMES[split])
    if not (images_path.is_file() and labels_path.is_file()):
        return  # an earlier change removed one: the loader's check of that is enough
    op = draw(st.sampled_from(["bytes", "image_shape", "label_value", "label_count", "shrink", "missing"]))
    if op == "bytes":
        path = draw(st.sampled_from([images_path, labels_path]))
        unzip = suffix and draw(st.booleans())  # the decompressed bytes, re-compressed
        try:
            raw = _read(path) if unzip else path.read_bytes()
        except (OSError, EOFError, zlib.error):
            return
        if raw:
            path.write_bytes(gzip.compress(mutate(raw, draw)) if unzip else mutate(raw, draw))
        return
    try:  # an earlier change may have left the split unreadable; the loader's check is then enough
        n = _header_dims(labels_path)[0]
        images = np.frombuffer(_read(images_path)[16:], np.uint8).reshape(n, 28, 28)
        labels = np.frombuffer(_read(labels_path)[8:], np.uint8).copy()
    except (OSError, EOFError, ValueError, IndexError, struct.error, zlib.error):
        return
    if op == "image_shape":
        h, w = draw(st.sampled_from([0, 1, 14, 28, 29])), draw(st.sampled_from([0, 1, 14, 28, 56]))
        count = draw(st.sampled_from([n // 2, n, 2 * n]))
        flat = np.resize(images.reshape(-1), count * h * w)
        shape = draw(st.sampled_from([(count, h, w), (count, h, w, 1), (count * h * w,)]))
        return write_idx(images_path, flat.reshape(shape))
    if op == "label_value" and n:
        labels[draw(st.integers(0, n - 1))] = draw(st.integers(0, 255))
        return write_idx(labels_path, labels)
    if op == "label_count":
        return write_idx(labels_path, np.resize(labels, draw(st.sampled_from([0, max(n - 1, 0), n + 1]))))
    if op == "shrink":  # both files of the split, consistently
        k = draw(st.integers(0, 2))
        write_idx(images_path, images[:k])
        return write_idx(labels_path, labels[:k])
    path = draw(st.sampled_from([images_path, labels_path]))
    path.unlink()
    if draw(st.booleans()):
        path.mkdir()


@FUZZ
@given(data=st.data(), gz=st.booleans())
def test_colored_mnist_mutated_idx_files(tmp_path_factory, data, gz):
    root = tmp_path_factory.mktemp("cmnist")
    folder = root / "MNIST" / "raw"
    write_mnist(folder, {"train": 3, "test": 1}, gz=gz)
    for _ in range(data.draw(st.integers(1, 2))):
        _mutate_mnist(folder, ".gz" if gz else "", data.draw)
    try:
        ds = get_dataset("colored_mnist", root=root)
    except DatasetFormatError as err:
        _one_line(err, root)
        return
    assert ds.num_classes == 2 and ds.input_shape == (2, 14, 14)
    total = 0
    for split in ("train", "val", "test", "test_out"):
        x, labels, colors = ds.images(split), ds.labels(split), ds.others(split)
        assert x.shape == (len(labels), 2, 14, 14) and len(colors) == len(labels)
        assert set(labels.tolist()) <= {0, 1} and set(colors.tolist()) <= {0, 1}
        if len(x):  # in [0, 1]; the colour channel holds the digit, the other one is zero
            assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
            assert float(x[np.arange(len(x)), 1 - colors].abs().max()) == 0.0
        total += len(labels)
    # Read back independently: the files the loader accepted hold 28x28 images, one label each.
    counts = []
    for images_name, labels_name in NAMES.values():
        images_dims = _header_dims(folder / (images_name + (".gz" if gz else "")))
        labels_dims = _header_dims(folder / (labels_name + (".gz" if gz else "")))
        assert images_dims[1:] == (28, 28) and images_dims[0] == labels_dims[0]
        counts.append(labels_dims[0])
    assert total == sum(counts)


def test_colored_mnist_images_that_are_not_28x28_are_refused(tmp_path):
    write_mnist(tmp_path, {"train": 3, "test": 1}, gz=False)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((10, 14, 56), np.uint8))
    with pytest.raises(DatasetFormatError) as err:
        get_dataset("colored_mnist", root=tmp_path)
    assert str(err.value) == f"{tmp_path / 't10k-images-idx3-ubyte'}: images are 14x56; expected 28x28"
