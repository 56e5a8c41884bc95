"""``samlens data list`` / ``describe``: output, files written, and one-line errors with nothing written."""

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
    assert lines["1"][-5:] == ["30", "5", "15", "150", "75"]
    assert lines["total"][1:] == ["600", "100", "300", "600", "300"]
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
