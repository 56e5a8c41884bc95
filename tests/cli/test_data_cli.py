"""``samlens data list`` / ``describe``: output, files written, and one-line errors with nothing written."""

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samlens.cli.main import main


def test_list_names_every_dataset(capsys):
    from samlens.data import list_datasets

    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in list_datasets():
        assert f"{name}: " in out
    assert "correlation=1.0" in out


def test_describe_prints_table_and_writes_png(tmp_path, capsys):
    out_dir = tmp_path / "desc"
    code = main(["data", "describe", "mnist5k_dominoes", "-o", "correlation=0.9", "--out", str(out_dir)])
    assert code == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    # group 1 = (mnist4, digit1): 10% of 300 train examples of class 0
    assert lines["1"][-5:] == ["30", "5", "15", "50", "50"]
    assert lines["total"][1:] == ["600", "100", "300", "200", "200"]
    assert lines["label==other"][1:] == ["0.900", "0.900", "0.900", "0.500", "0.500"]
    assert sorted(p.name for p in out_dir.iterdir()) == ["examples.png", "summary.txt"]
    image = np.asarray(Image.open(out_dir / "examples.png").convert("L"))
    assert image.shape[0] > 200 and image.shape[1] > 300 and image.std() > 10
    assert (out_dir / "summary.txt").read_text() in out


def _assert_one_line_error(capsys, expected: str) -> None:
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("samlens data: error: ") and expected in err, err


def test_unknown_option_exits_2_and_writes_nothing(tmp_path, capsys):
    out_dir = tmp_path / "desc"
    assert main(["data", "describe", "mnist5k_dominoes", "-o", "colour=red", "--out", str(out_dir)]) == 2
    _assert_one_line_error(capsys, "unknown option(s) colour; valid options: block_size, correlation")
    assert not out_dir.exists()


def test_malformed_option_and_unknown_dataset(tmp_path, capsys):
    assert (
        main(["data", "describe", "mnist5k_dominoes", "-o", "correlation", "--out", str(tmp_path / "x")]) == 2
    )
    _assert_one_line_error(capsys, "--option expects KEY=VALUE, got 'correlation'")
    assert main(["data", "describe", "nope", "--out", str(tmp_path / "x")]) == 2
    _assert_one_line_error(capsys, "unknown dataset 'nope'; valid choices:")
    assert list(tmp_path.iterdir()) == []


def _mini_waterbirds(root, decodable: bool = True):
    rows = ["img_id,img_filename,y,split,place,place_filename"]
    for i in range(8):
        name = f"001.Species/img_{i}.jpg"
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if decodable:
            Image.new("RGB", (10, 10), (20 * i, 0, 0)).save(path)
        else:
            path.write_bytes(b"not an image")
        rows.append(f"{i},{name},{i % 2},{i % 3 and 1},{(i // 2) % 2},x.jpg")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")


def test_real_dataset_describe(tmp_path, capsys):
    _mini_waterbirds(tmp_path / "wb")
    out_dir = tmp_path / "out"
    args = ["data", "describe", "waterbirds", "--root", str(tmp_path / "wb"), "-o", "image_size=16"]
    assert main([*args, "--out", str(out_dir)]) == 0
    assert "total" in capsys.readouterr().out
    assert (out_dir / "examples.png").stat().st_size > 1000


def test_missing_root_exits_2(tmp_path, capsys):
    out_dir = tmp_path / "out"
    code = main(["data", "describe", "waterbirds", "--root", str(tmp_path / "none"), "--out", str(out_dir)])
    assert code == 2
    _assert_one_line_error(capsys, f"{tmp_path / 'none'}: directory not found; expected Waterbirds")
    assert not out_dir.exists()


def test_undecodable_image_exits_2_and_writes_nothing(tmp_path, capsys):
    _mini_waterbirds(tmp_path / "wb", decodable=False)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args = ["data", "describe", "waterbirds", "--root", str(tmp_path / "wb"), "--out", str(out_dir)]
    assert main(args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == ""
    assert "\n" not in err and "cannot decode image (UnidentifiedImageError); expected JPEG/PNG" in err
    assert str(tmp_path / "wb" / "001.Species") in err
    assert list(out_dir.iterdir()) == []


def test_wrong_csv_columns_exits_2(tmp_path, capsys):
    _mini_waterbirds(tmp_path / "wb")
    (tmp_path / "wb" / "metadata.csv").write_text("id,file,label\n0,a.jpg,1\n")
    assert (
        main(["data", "describe", "waterbirds", "--root", str(tmp_path / "wb"), "--out", str(tmp_path / "o")])
        == 2
    )
    _assert_one_line_error(
        capsys, "metadata.csv: missing column(s) img_filename, y, split, place; expected columns img_filename"
    )
    assert not (tmp_path / "o").exists()


def test_unknown_option_of_a_nested_command_names_that_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "list", "--bar"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "samlens data list: error: unrecognized arguments: --bar; valid options: --help"


# ------------------------------------------------------------------ malformed real-format datasets
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from data_formats import write_celeba, write_cifar, write_mnist, write_pacs, write_waterbirds  # noqa: E402


def _waterbirds_header_only(root):
    write_waterbirds(root)
    (root / "metadata.csv").write_text("img_id,img_filename,y,split,place,place_filename\n")
    return root, "metadata.csv: no data rows; expected one row per image", []


def _waterbirds_without_val(root):
    write_waterbirds(root)
    lines = (root / "metadata.csv").read_text().splitlines()
    kept = [lines[0]] + [line for line in lines[1:] if line.split(",")[3] != "1"]
    (root / "metadata.csv").write_text("\n".join(kept) + "\n")
    return root, "metadata.csv: no rows with split 1 (val); expected rows for train (0) and val (1)", []


def _celeba_without_val(root):
    write_celeba(root)
    part = root / "list_eval_partition.txt"
    part.write_text(part.read_text().replace(" 1\n", " 0\n"))
    return root, "list_eval_partition.txt: no rows with partition 1 (val)", []


def _celeba_header_only(root):
    write_celeba(root, csv=True)
    attributes = (root / "list_attr_celeba.csv").read_text().splitlines()[0]
    (root / "list_attr_celeba.csv").write_text(attributes + "\n")
    return root, "list_attr_celeba.csv: no data rows; expected one row per image", []


def _domainbed_empty_class_folders(root):
    write_pacs(root, {"art_painting": 2, "cartoon": 2, "photo": 2, "sketch": 2})
    for image in (root / "PACS").rglob("*.jpg"):
        image.unlink()
    return root, "PACS/art_painting: no images in its class folders", []


def _image_size_not_a_number(root):
    write_waterbirds(root)
    return root, "image_size must be an integer in 8..1024, got 'abc'", ["-o", "image_size=abc"]


def _holdout_fraction_not_a_number(root):
    write_pacs(root, {"art_painting": 2, "cartoon": 2, "photo": 2, "sketch": 2})
    return root, "holdout_fraction must be a number in (0, 1), got 'abc'", ["-o", "holdout_fraction=abc"]


def _cifar_batch(length: int):
    def make(root):
        write_cifar(root, {"train": {1: 3, 9: 3}, "test": {1: 2, 9: 2}})
        write_mnist(root / "MNIST" / "raw", {"train": 3, "test": 2})
        # A pickle whose BINBYTES8 length field is absurd: OverflowError (> 2**63) or MemoryError.
        batch = root / "cifar-10-batches-py" / "data_batch_2"
        batch.write_bytes(b"\x80\x04\x8e" + length.to_bytes(8, "little"))
        return root, f"{root / 'cifar-10-batches-py'}: cannot read CIFAR-10 batch", []

    return make


@pytest.mark.parametrize(
    "name, make",
    [
        ("waterbirds", _waterbirds_header_only),
        ("waterbirds", _waterbirds_without_val),
        ("celeba", _celeba_without_val),
        ("celeba", _celeba_header_only),
        ("domainbed", _domainbed_empty_class_folders),
        ("waterbirds", _image_size_not_a_number),
        ("domainbed", _holdout_fraction_not_a_number),
        ("cifar_mnist", _cifar_batch(2**63 + 5)),
        ("cifar_mnist", _cifar_batch(2**62)),
    ],
    ids=[
        "waterbirds-header-only", "waterbirds-no-val", "celeba-no-val", "celeba-header-only",
        "domainbed-empty-classes",
        "image-size-abc", "holdout-fraction-abc", "cifar-overflow", "cifar-memory",
    ],
)  # fmt: skip
def test_malformed_dataset_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, name, make):
    root, expected, options = make(tmp_path / "data")
    out_dir = tmp_path / "out"
    code = main(["data", "describe", name, "--root", str(root), *options, "--out", str(out_dir)])
    assert code == 2
    _assert_one_line_error(capsys, expected)
    assert not out_dir.exists()


def test_cifar_mnist_val_fraction_0_describes_an_empty_val(tmp_path, capsys):
    write_cifar(tmp_path, {"train": {1: 6, 9: 5}, "test": {1: 3, 9: 3}})
    write_mnist(tmp_path / "MNIST" / "raw", {"train": 4, "test": 2})
    args = ["data", "describe", "cifar_mnist", "--root", str(tmp_path), "-o", "val_fraction=0"]
    assert main([*args, "--split", "val", "--out", str(tmp_path / "out")]) == 0
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.strip()}
    # per class n = min(6, 5, 4, 4) = 4 in train, all kept; test min(3, 3, 2, 2) = 2
    assert lines["total"][1:] == ["8", "0", "4", "8", "4"]
    assert (tmp_path / "out" / "examples.png").is_file()


def test_negative_seed_is_one_line(tmp_path, capsys):
    assert main(["data", "describe", "mnist5k_dominoes", "--seed", "-1", "--out", str(tmp_path / "o")]) == 2
    _assert_one_line_error(capsys, "seed must be a non-negative integer, got -1")
    assert not (tmp_path / "o").exists()
