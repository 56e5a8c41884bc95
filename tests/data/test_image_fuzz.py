"""Mutated image files (the image-folder, Waterbirds, CelebA and DomainBed readers all decode
through load_rgb): each one decodes to an RGB image or raises DatasetFormatError naming the file."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fuzzing import mutate
from samlens.data.real.common import load_rgb
from samlens.errors import DatasetFormatError

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module", params=["PNG", "JPEG"])
def image_bytes(request) -> tuple[str, bytes]:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (20, 16, 3), dtype=np.uint8)).save(buf, format=request.param)
    return request.param.lower(), buf.getvalue()


@FUZZ
@given(data=st.data())
def test_mutated_images_decode_or_raise_one_error(image_bytes, tmp_path_factory, data):
    suffix, raw = image_bytes
    path = tmp_path_factory.mktemp("img") / f"x.{suffix}"
    path.write_bytes(mutate(raw, data.draw))
    try:
        image = load_rgb(path)
    except DatasetFormatError as err:
        assert "\n" not in str(err) and str(path) in str(err)
        return
    assert image.mode == "RGB" and image.size[0] > 0 and image.size[1] > 0


@pytest.mark.parametrize("side", [12000, 20000])  # ~1.4e8 pixels warns in PIL, ~4e8 raises
def test_a_header_claiming_a_huge_image_is_one_error(tmp_path, side):
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="BMP")
    raw = bytearray(buf.getvalue())
    raw[18:22] = side.to_bytes(4, "little")  # BITMAPINFOHEADER width
    raw[22:26] = side.to_bytes(4, "little")  # and height
    path = tmp_path / "bomb.bmp"
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetFormatError, match=r"bomb\.bmp: cannot decode image \(Decompression"):
        load_rgb(path)
