"""Image decoding for the hasher: every mode becomes RGB, bombs and garbage get clear errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from hasher.errors import ImageDecodeError
from hasher.io import load_rgb


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA", "LA", "CMYK", "I;16", "1"])
def test_every_mode_becomes_rgb_uint8(mode: str) -> None:
    img = Image.new(mode, (40, 30))
    fmt = "JPEG" if mode == "CMYK" else ("TIFF" if mode == "I;16" else "PNG")
    arr = load_rgb(encode(img, fmt))
    assert arr.shape == (30, 40, 3) and arr.dtype == np.uint8


def test_alpha_composites_on_white() -> None:
    arr = load_rgb(encode(Image.new("RGBA", (4, 4), (255, 0, 0, 0))))
    assert (arr == 255).all()


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    img = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    assert load_rgb(encode(img, "TIFF")).min() == 255
    half = Image.fromarray(np.full((8, 8), 32896, dtype=np.uint16))
    assert abs(int(load_rgb(encode(half, "TIFF"))[0, 0, 0]) - 128) <= 1


def test_exif_orientation_is_applied() -> None:
    img = Image.new("RGB", (60, 20), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    arr = load_rgb(encode(img, "JPEG", exif=exif.tobytes()))
    assert arr.shape[:2] == (60, 20)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_images_give_their_first_frame(fmt: str) -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "blue", "green")]
    buf = io.BytesIO()
    frames[0].save(buf, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    arr = load_rgb(buf.getvalue())
    assert arr[8, 8, 0] > 200 and arr[8, 8, 2] < 60


def test_one_by_one_image() -> None:
    assert load_rgb(encode(Image.new("RGB", (1, 1), "red"))).shape == (1, 1, 3)


def test_huge_image_refused_from_header() -> None:
    data = encode(Image.new("1", (30000, 30000)))
    with pytest.raises(ImageDecodeError, match="pixels exceeds the limit|decompression bomb"):
        load_rgb(data)


def test_truncated_and_garbage(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = encode(Image.effect_noise((200, 200), 50).convert("RGB"), "JPEG")
    with pytest.raises(ImageDecodeError, match="corrupt or truncated"):
        load_rgb(data[: len(data) // 3])
    with pytest.raises(ImageDecodeError, match="not an image"):
        load_rgb(b"<html>definitely not an image</html>")
    with pytest.raises(ImageDecodeError, match="empty"):
        load_rgb(b"")
    with pytest.raises(ImageDecodeError, match="cannot read"):
        load_rgb(tmp_path / "missing.png")


def test_numpy_inputs() -> None:
    assert load_rgb(np.zeros((5, 6), dtype=np.uint8)).shape == (5, 6, 3)
    assert load_rgb(np.ones((5, 6, 3), dtype=np.float32))[0, 0, 0] == 255
    with pytest.raises(ImageDecodeError, match="shape"):
        load_rgb(np.zeros((5, 6, 2), dtype=np.uint8))
