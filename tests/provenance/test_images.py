"""Image gatekeeping at ingest: refuse clearly, before anything is written."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from provenance.errors import InvalidImageError
from provenance.images import inspect_image

LIMITS = dict(max_bytes=5_000_000, max_pixels=4_000_000)


def encode(size=(64, 48), fmt="PNG") -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt, media", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
def test_accepts_real_images(fmt: str, media: str) -> None:
    info = inspect_image(encode(fmt=fmt), **LIMITS)
    assert (info.media_type, info.width, info.height) == (media, 64, 48)


def test_refuses_non_images() -> None:
    with pytest.raises(InvalidImageError, match="not an image"):
        inspect_image(b"%PDF-1.7 definitely not pixels", name="doc.pdf", **LIMITS)


def test_refuses_empty() -> None:
    with pytest.raises(InvalidImageError, match="empty"):
        inspect_image(b"", **LIMITS)


def test_refuses_truncated_image() -> None:
    data = encode(size=(400, 300), fmt="JPEG")
    with pytest.raises(InvalidImageError, match="corrupt or truncated"):
        inspect_image(data[: len(data) // 2], **LIMITS)


def test_refuses_too_many_bytes() -> None:
    with pytest.raises(InvalidImageError, match="exceeds the limit"):
        inspect_image(encode(), max_bytes=10, max_pixels=10**9)


def test_refuses_decompression_bomb_before_decoding() -> None:
    # A 9000x9000 PNG of one colour compresses to ~80 KB but decodes to 81 Mpx; our limit is read from the header.
    buf = io.BytesIO()
    Image.new("L", (9000, 9000)).save(buf, format="PNG")
    assert len(buf.getvalue()) < 200_000
    with pytest.raises(InvalidImageError, match="81000000 pixels exceeds the limit of 50000000"):
        inspect_image(buf.getvalue(), max_bytes=10**9, max_pixels=50_000_000)


def test_refuses_pillow_scale_bombs_too() -> None:
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, format="PNG")
    with pytest.raises(InvalidImageError, match="decompression bomb"):
        inspect_image(buf.getvalue(), max_bytes=10**9, max_pixels=10**10)


def test_real_photo_from_shared_data(shared_photos) -> None:  # type: ignore[no-untyped-def]
    data = (shared_photos / "kodak24" / "kodim01.png").read_bytes()
    info = inspect_image(data, max_bytes=50_000_000, max_pixels=100_000_000)
    assert (info.media_type, info.width, info.height) == ("image/png", 500, 500)  # this copy is a 500x500 crop


def _grey16_png(values) -> bytes:  # type: ignore[no-untyped-def]
    import numpy as np

    buf = io.BytesIO()
    Image.fromarray(np.asarray(values, dtype=np.uint16)).save(buf, "PNG")
    return buf.getvalue()


def test_sixteen_bit_greyscale_png_decodes_scaled_not_white() -> None:
    """Pillow's convert("RGB") clips 16-bit greyscale at 255 (a solid white image, no features at lookup)."""
    import numpy as np

    from hasher.io import load_rgb
    from provenance.images import decode_rgb

    ramp = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    data = _grey16_png(ramp)
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    rgb = decode_rgb(data, max_bytes=10**7, max_pixels=10**7)
    expected = np.rint(ramp.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert rgb.shape == (48, 64, 3) and (rgb[:, :, 0] == expected).all() and (rgb[:, :, 2] == expected).all()
    assert (load_rgb(data) == rgb).all()  # the hasher sees the same pixels as lookup's features
    dark = _grey16_png(np.full((8, 8), 200 * 257))  # every value <= 255 * 257: still 16-bit, never "8-bit"
    assert decode_rgb(dark, max_bytes=10**7, max_pixels=10**7).max() == 200 == load_rgb(dark).max()
