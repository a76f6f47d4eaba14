"""imaging.jpeg: format sniffing and the SOF size, checked against real encoders' output."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from imaging.jpeg import jpeg_size_px, sniff_format


def encoded(ext: str, width: int = 40, height: int = 24) -> bytes:
    image = np.random.default_rng(1).integers(0, 255, (height, width, 3), np.uint8)
    ok, data = cv2.imencode(ext, image)
    assert ok
    return bytes(data)


def with_declared_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The same JPEG with its SOF0 rewritten to declare another size (a decompression bomb)."""
    sof = jpeg.index(b"\xff\xc0")
    size = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return jpeg[: sof + 5] + size + jpeg[sof + 9 :]


@pytest.mark.parametrize(("width", "height"), [(40, 24), (1, 1), (1920, 1080)])
def test_size_of_a_real_jpeg(width: int, height: int) -> None:
    assert jpeg_size_px(encoded(".jpg", width, height)) == (width, height)


def test_progressive_jpeg_size() -> None:
    image = np.zeros((30, 50, 3), np.uint8)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok and jpeg_size_px(bytes(data)) == (50, 30)


def test_bomb_declares_its_size_in_a_few_hundred_bytes() -> None:
    bomb = with_declared_size(encoded(".jpg"), 30000, 30000)
    assert len(bomb) < 2000
    assert jpeg_size_px(bomb) == (30000, 30000)


@pytest.mark.parametrize(
    ("ext", "name"), [(".jpg", "jpeg"), (".png", "png"), (".tiff", "tiff"), (".bmp", "bmp")]
)
def test_sniff_real_files(ext: str, name: str) -> None:
    assert sniff_format(encoded(ext)) == name


def test_sniff_gif_and_unknown() -> None:
    assert sniff_format(b"GIF89a\x01\x00") == "gif"
    assert sniff_format(b"") is None
    assert sniff_format(b"hello") is None


def test_not_a_jpeg_or_truncated_header_has_no_size() -> None:
    jpeg = encoded(".jpg")
    assert jpeg_size_px(encoded(".png")) is None
    assert jpeg_size_px(jpeg[: jpeg.index(b"\xff\xc0") + 6]) is None
    assert jpeg_size_px(b"\xff\xd8\xff\xda\x00\x08") is None  # scan before any SOF


@given(st.binary(max_size=512))
def test_never_raises_on_arbitrary_bytes(tail: bytes) -> None:
    size = jpeg_size_px(b"\xff\xd8\xff" + tail)
    assert size is None or (0 <= size[0] < 65536 and 0 <= size[1] < 65536)
