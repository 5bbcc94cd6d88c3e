"""Image decoding and inspection (``provenance.images``) on mutated real images: PNG (RGB, RGBA, palette, 8- and
16-bit grey), baseline and progressive JPEG (with EXIF orientation), lossy and lossless WebP, animated GIF, BMP and
TIFF, with header fields changed (PNG chunks with their CRC rewritten, JPEG frame headers, GIF and WebP sizes) and
bytes flipped, overwritten, cut, inserted and deleted. Every gate must answer an image or ``InvalidImageError``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given

from provenance.errors import InvalidImageError
from provenance.images import check_query_header, decode_query, decode_rgb, inspect_image
from tests.fuzz.conftest import FuzzStats, budget, corpus_files
from tests.fuzz.mutations import mutated_images
from tests.fuzz.seeds import image_seeds

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's own notes on broken TIFF/EXIF tags

SEEDS = image_seeds()
MAX_BYTES = 2_000_000
MAX_PIXELS = 4_000_000  # small: a header claiming a large image is refused or fails fast, so examples stay cheap


def _gates(data: bytes) -> None:
    info = inspect_image(data, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)
    rgb = decode_rgb(data, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, rgb.shape
    assert info.width > 0 and info.height > 0


def _query(data: bytes) -> None:
    header = check_query_header(data, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS, min_side=8)
    query = decode_query(data, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS, max_side=32, min_side=8)
    assert (query.width, query.height) == (header.width, header.height)
    assert max(query.rgb.shape[:2]) <= 32  # shrunk while decoding, whatever the bytes claimed


@pytest.mark.parametrize("gate", [_gates, _query], ids=["inspect+decode", "query"])
def test_fuzz_image_decoding(gate, fuzz_stats: FuzzStats) -> None:  # type: ignore[no-untyped-def]
    target = "images." + ("inspect" if gate is _gates else "query")

    @budget(300)
    @given(data=mutated_images(SEEDS))
    @example(data=b"")
    @example(data=SEEDS["png-grey16"])
    def run(data: bytes) -> None:
        fuzz_stats.run(target, lambda: gate(data), (InvalidImageError,), given=data)

    run()
    for path in corpus_files("images"):
        fuzz_stats.run(target, lambda: gate(path.read_bytes()), (InvalidImageError,), given=path.name)
