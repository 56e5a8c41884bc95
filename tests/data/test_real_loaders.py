"""Real-dataset loaders read miniature, format-exact copies and report splits, labels, attributes, groups."""

import hashlib
import pickle

import numpy as np
import pytest
import torch
from data_formats import (
    CELEBA_COUNTS,
    PACS_CLASSES,
    PACS_DOMAINS,
    WATERBIRDS_COUNTS,
    celeba_rows,
    write_celeba,
    write_cifar,
    write_idx,
    write_mnist,
    write_pacs,
    write_waterbirds,
)

from samlens.data import get_dataset
from samlens.errors import ConfigError, DatasetFormatError


def _expected_counts(counts: dict, split_code: int) -> list[int]:
    return [counts[(a, b, split_code)] for a in (0, 1) for b in (0, 1)]


# --------------------------------------------------------------------------------------------- waterbirds
@pytest.fixture()
def waterbirds_root(tmp_path):
    root = tmp_path / "waterbird_complete95_forest2water2"
    write_waterbirds(root)
    return root


def test_waterbirds_splits_labels_groups(waterbirds_root):
    ds = get_dataset("waterbirds", root=waterbirds_root, image_size=16)
    assert ds.attribute_names == ("waterbird", "water") and ds.num_groups == 4
    for split, code in (("train", 0), ("val", 1), ("test", 2)):
        assert ds.group_counts(split).tolist() == _expected_counts(WATERBIRDS_COUNTS, code)
    probe = np.concatenate([ds.group_counts("probe_train")[None], ds.group_counts("probe_test")[None]])
    assert probe.sum(0).tolist() == ds.group_counts("val").tolist() and probe.tolist() == [[1] * 4] * 2
    image, label, attrs = ds.split("train")[0]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32
    assert (label, attrs) == (0, {"other": 0, "group": 0})
    image, label, attrs = ds.split("train", train=True)[8]  # 8th row: (y=0, place=1)
    assert image.shape == (3, 16, 16) and (label, attrs["other"], attrs["group"]) == (0, 1, 1)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: (r / "metadata.csv").unlink(), "metadata.csv: file not found; expected CSV with columns"),
        (
            lambda r: (r / "metadata.csv").write_text("img_id,filename,y,split\n1,a.jpg,0,0\n"),
            "metadata.csv: missing column(s) img_filename, place; "
            "expected columns img_filename, y, split, place",
        ),
        (
            lambda r: (r / "metadata.csv").write_text(
                (r / "metadata.csv").read_text().replace(",0,0,0,/l", ",2,0,0,/l", 1)
            ),
            "metadata.csv: column 'y' has value '2' in data row 1; expected one of [0, 1]",
        ),
        (
            lambda r: next((r / "002.Laysan_Albatross").iterdir()).unlink(),
            ": image file not found (listed in",
        ),
    ],
)
def test_waterbirds_bad_input(waterbirds_root, mutate, message):
    mutate(waterbirds_root)
    with pytest.raises(DatasetFormatError) as err:
        get_dataset("waterbirds", root=waterbirds_root)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(waterbirds_root) in str(err.value)


def test_waterbirds_missing_root_and_undecodable_image(tmp_path, waterbirds_root):
    with pytest.raises(DatasetFormatError, match="nowhere: directory not found; expected Waterbirds"):
        get_dataset("waterbirds", root=tmp_path / "nowhere")
    bad = waterbirds_root / "002.Laysan_Albatross" / "bird_0001.jpg"
    bad.write_bytes(b"this is not a jpeg")
    ds = get_dataset("waterbirds", root=waterbirds_root)
    with pytest.raises(DatasetFormatError) as err:
        ds.split("train")[0]
    assert str(err.value).startswith(f"{bad}: cannot decode image")


# --------------------------------------------------------------------------------------------- celeba
@pytest.mark.parametrize("csv", [False, True], ids=["txt", "kaggle-csv"])
def test_celeba_both_formats(tmp_path, csv):
    write_celeba(tmp_path, csv=csv)
    ds = get_dataset("celeba", root=tmp_path, image_size=32)
    assert ds.attribute_names == ("blond_hair", "male")
    for split, code in (("train", 0), ("val", 1), ("test", 2)):
        assert ds.group_counts(split).tolist() == _expected_counts(CELEBA_COUNTS, code)
    assert (ds.group_counts("probe_train") + ds.group_counts("probe_test")).tolist() == [2, 2, 2, 2]
    image, label, attrs = ds.split("train")[0]
    assert image.shape == (3, 32, 32) and label == 0 and attrs == {"other": 0, "group": 0}
    # configurable target: 5_o_Clock_Shadow is +1 exactly for rows whose index is divisible by 3
    shadow = get_dataset("celeba", root=tmp_path, target="5_o_Clock_Shadow", other="Blond_Hair")
    rows = celeba_rows()
    expected = [int(v[0] == 1) for n, v, p in rows if p == 0]
    assert shadow.labels("train").tolist() == expected


def test_celeba_bad_input(tmp_path):
    write_celeba(tmp_path)
    with pytest.raises(ConfigError, match="target 'Bald' is not a column of .*list_attr_celeba.txt"):
        get_dataset("celeba", root=tmp_path, target="Bald")
    attr = tmp_path / "list_attr_celeba.txt"
    lines = attr.read_text().splitlines()
    original = lines[2]
    lines[2] = lines[2][:-2] + " 0"  # last attribute (Young) out of range: unused, but still malformed
    attr.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError) as err:
        get_dataset("celeba", root=tmp_path)
    assert str(err.value) == f"{attr}: line 3 has attribute value '0'; expected -1 or 1"
    parts = original.split()
    parts[3] = "0"  # Blond_Hair of the first image
    lines[2] = " ".join(parts)
    attr.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError) as err:
        get_dataset("celeba", root=tmp_path)
    assert str(err.value) == f"{attr}: line 3 has attribute value '0'; expected -1 or 1"
    lines[2] = original
    lines[3] = lines[3] + " 1"
    attr.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match=r"list_attr_celeba.txt: line 4 has 6 values; expected 5"):
        get_dataset("celeba", root=tmp_path)
    (tmp_path / "list_eval_partition.txt").unlink()
    attr.unlink()
    with pytest.raises(DatasetFormatError, match="list_attr_celeba.txt: file not found; expected"):
        get_dataset("celeba", root=tmp_path)


def test_celeba_csv_wrong_columns(tmp_path):
    write_celeba(tmp_path, csv=True)
    (tmp_path / "list_eval_partition.csv").write_text("image,split\n000001.jpg,0\n")
    with pytest.raises(DatasetFormatError) as err:
        get_dataset("celeba", root=tmp_path)
    assert str(err.value) == (
        f"{tmp_path / 'list_eval_partition.csv'}: missing column(s) image_id, partition; "
        "expected columns image_id, partition"
    )


# --------------------------------------------------------------------------------------------- cifar_mnist
@pytest.fixture()
def cifar_mnist_root(tmp_path):
    write_cifar(tmp_path, {"train": {1: 6, 9: 5, 0: 2}, "test": {1: 3, 9: 3, 3: 1}})
    write_mnist(tmp_path / "MNIST" / "raw", {"train": 4, "test": 2})
    return tmp_path


def _block_classes(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Read back (CIFAR class, MNIST digit) from the fixture's pixel codes."""
    x = (images * 255).round().long()
    cifar = ((x[:, 0, 48, 16] - 5) // 20).numpy()
    mnist = ((x[:, 0, 16, 16] - 10) // 20).numpy()
    return cifar, mnist


def test_cifar_mnist_layout_sizes_and_blocks(cifar_mnist_root):
    ds = get_dataset("cifar_mnist", root=cifar_mnist_root, val_fraction=0.25)
    assert ds.input_shape == (3, 64, 32) and ds.attribute_names == ("cifar", "mnist")
    # per class n = min(6, 5, 4, 4) = 4 in train (1 held out as val), min(3, 3, 2, 2) = 2 in test
    assert [len(ds.labels(s)) for s in ds.splits] == [6, 2, 4, 6, 4]
    assert ds.group_counts("train").tolist() == [3, 0, 0, 3]
    assert ds.group_counts("probe_test").tolist() == [1, 1, 1, 1]
    for split in ds.splits:
        images = ds.images(split)
        assert images.shape[1:] == (3, 64, 32) and images.min() >= 0 and images.max() <= 1
        cifar, mnist = _block_classes(images)
        assert cifar.tolist() == np.array([1, 9])[ds.labels(split)].tolist()
        assert mnist.tolist() == np.array([0, 1])[ds.others(split)].tolist()
        # MNIST is padded 28 -> 32 (2-pixel zero border) and repeated over three channels
        assert float(images[:, :, :2].abs().max()) == 0.0
        assert torch.equal(images[:, 0, :32], images[:, 2, :32])
    randomized = get_dataset("cifar_mnist", root=cifar_mnist_root, randomize=True, val_fraction=0.25)
    assert randomized.group_counts("test").tolist() == [1, 1, 1, 1]


def test_cifar_mnist_bad_input(cifar_mnist_root):
    batch = cifar_mnist_root / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(b"garbage")
    with pytest.raises(DatasetFormatError, match="cifar-10-batches-py: cannot read CIFAR-10 batch"):
        get_dataset("cifar_mnist", root=cifar_mnist_root)
    batch.unlink()
    with pytest.raises(DatasetFormatError) as err:
        get_dataset("cifar_mnist", root=cifar_mnist_root)
    assert str(err.value).startswith(f"{batch}: file not found; expected the CIFAR-10 python batches")
    write_cifar(cifar_mnist_root, {"train": {1: 6, 9: 5}, "test": {1: 3, 9: 3}})
    with open(cifar_mnist_root / "cifar-10-batches-py" / "test_batch", "rb") as f:
        entry = pickle.load(f)
    entry["labels"][0] = 11
    with open(cifar_mnist_root / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump(entry, f, protocol=2)
    with pytest.raises(DatasetFormatError, match="label 11 out of range; expected 0..9"):
        get_dataset("cifar_mnist", root=cifar_mnist_root)


def test_mnist_idx_errors(cifar_mnist_root):
    labels = cifar_mnist_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    write_idx(labels, np.array([0, 1, 2, 12] * 5))
    with pytest.raises(DatasetFormatError) as err:
        get_dataset("cifar_mnist", root=cifar_mnist_root)
    assert str(err.value) == f"{labels}: label 12 out of range; expected 0..9"
    labels.write_bytes(b"\x00\x00\x08\x01\x00")
    with pytest.raises(DatasetFormatError, match="cannot read IDX file|bad IDX header"):
        get_dataset("cifar_mnist", root=cifar_mnist_root)


# --------------------------------------------------------------------------------------------- colored_mnist
def test_colored_mnist_environments(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw", {"train": 60, "test": 15}, gz=False)
    ds = get_dataset("colored_mnist", root=tmp_path)
    assert ds.input_shape == (2, 14, 14) and ds.attribute_names == ("digit_lt_5", "color")
    env_size = 750 // 3
    n_out = int(env_size * 0.2)
    assert len(ds.labels("train")) == 2 * (env_size - n_out) and len(ds.labels("val")) == 2 * n_out
    assert len(ds.labels("test")) == env_size - n_out and len(ds.labels("test_out")) == n_out
    for split in ("train", "test"):
        x = ds.images(split)
        colors, labels = ds.others(split), ds.labels(split)
        # the colour channel holds the digit, the other channel is zero
        rows = torch.arange(len(x))
        assert float(x[rows, 1 - torch.as_tensor(colors)].abs().max()) == 0.0
        digits = ((x[rows, torch.as_tensor(colors), 5, 5] * 255).round().long() - 10) // 20
        flipped = np.mean(labels != (digits.numpy() < 5))
        assert 0.15 < flipped < 0.35  # label noise 0.25
        disagree = np.mean(colors != labels)
        assert (0.08 < disagree < 0.25) if split == "train" else (0.82 < disagree < 0.96)


def test_domainbed_split_reproduces_domainbed():
    from samlens.data.real.domainbed import in_out_split, seed_hash

    assert seed_hash(0, 1) == int(hashlib.md5(b"(0, 1)").hexdigest(), 16) % (2**31)
    keys = list(range(37))
    np.random.RandomState(seed_hash(3, 2)).shuffle(keys)  # DomainBed's split_dataset
    in_idx, out_idx = in_out_split(37, 0.2, seed_hash(3, 2))
    assert out_idx.tolist() == keys[:7] and in_idx.tolist() == keys[7:]


# --------------------------------------------------------------------------------------------- domainbed
@pytest.fixture()
def pacs_root(tmp_path):
    counts = write_pacs(tmp_path, {"art_painting": 5, "cartoon": 4, "photo": 5, "sketch": 6})
    return tmp_path, counts


def test_domainbed_pacs(pacs_root):
    from samlens.data.real.domainbed import in_out_split, seed_hash

    root, counts = pacs_root
    ds = get_dataset("domainbed", root=root, dataset="PACS", test_domain="photo", image_size=24, trial_seed=1)
    assert ds.num_classes == 7 and ds.num_other == 4 and ds.other_names == list(PACS_DOMAINS)
    assert ds.splits == ("train", "val", "test", "probe_train", "probe_test", "test_out")
    expected = {s: np.zeros(28, np.int64) for s in ("train", "val", "test", "test_out")}
    for d, domain in enumerate(PACS_DOMAINS):
        # ImageFolder order: classes sorted, files sorted within a class
        targets = np.concatenate([np.full(counts[(domain, c)], k) for k, c in enumerate(PACS_CLASSES)])
        in_idx, out_idx = in_out_split(len(targets), 0.2, seed_hash(1, d))
        in_split, out_split = ("test", "test_out") if domain == "photo" else ("train", "val")
        np.add.at(expected[in_split], targets[in_idx] * 4 + d, 1)
        np.add.at(expected[out_split], targets[out_idx] * 4 + d, 1)
    for split, counts_ in expected.items():
        assert ds.group_counts(split).tolist() == counts_.tolist(), split
    assert set(ds.others("test")) == {2}
    probe = ds.group_counts("probe_train") + ds.group_counts("probe_test")
    assert probe.tolist() == (expected["val"] + expected["test_out"]).tolist()
    image, label, attrs = ds.split("train", train=True)[0]
    assert image.shape == (3, 24, 24) and attrs["group"] == label * 4 + attrs["other"]


def test_domainbed_bad_input(pacs_root):
    root, _ = pacs_root
    with pytest.raises(ConfigError, match="test_domain 'clipart' is not a PACS domain; valid: art_painting"):
        get_dataset("domainbed", root=root, test_domain="clipart")
    with pytest.raises(DatasetFormatError, match="VLCS: directory not found; expected one folder per domain"):
        get_dataset("domainbed", root=root, dataset="VLCS", test_domain="SUN09")
    for f in (root / "PACS" / "cartoon" / "horse").iterdir():
        f.unlink()
    (root / "PACS" / "cartoon" / "horse").rmdir()
    with pytest.raises(DatasetFormatError) as err:
        get_dataset("domainbed", root=root)
    assert str(err.value).startswith(f"{root / 'PACS' / 'cartoon'}: 6 class folders; expected 7") or str(
        err.value
    ).startswith(f"{root / 'PACS' / 'cartoon'}: class folders differ")
    import shutil

    shutil.rmtree(root / "PACS" / "sketch")
    with pytest.raises(DatasetFormatError, match="domain folders .*; expected .*sketch"):
        get_dataset("domainbed", root=root)


# ------------------------------------------------------------------------------------- dominoes from root
def test_mnist_fashion_dominoes_reads_idx_files_from_root(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw", {"train": 12, "test": 4})
    write_mnist(tmp_path / "FashionMNIST" / "raw", {"train": 20, "test": 5}, gz=False)
    ds = get_dataset("mnist_fashion_dominoes", root=tmp_path, train_per_class=12)
    assert ds.info["mnist_source"] == str(tmp_path / "MNIST" / "raw")
    # Fashion (label) train: 20 per class -> 2 val + 18 train pool (12 train, 6 left for probe_train);
    # test: 5 per class
    assert [len(ds.labels(s)) for s in ds.splits] == [24, 4, 10, 12, 10]
    for split in ds.splits:
        x = (ds.images(split)[:, 0] * 255).round().long()
        top_digit = (x[:, 16, 16] - 10) // 20
        bottom_class = (x[:, 48, 16] - 10) // 20
        assert bottom_class.tolist() == np.array([2, 4])[ds.labels(split)].tolist()
        assert top_digit.tolist() == np.array([0, 1])[ds.others(split)].tolist()


def test_per_class_caps_are_checked():
    with pytest.raises(ConfigError, match="train_per_class must be a positive integer or null, got 0"):
        get_dataset("mnist_fashion_dominoes", train_per_class=0)
    with pytest.raises(ConfigError, match="eval_per_class must be a positive integer or null, got 'many'"):
        get_dataset("textured_objects", eval_per_class="many")
