"""Bounded decoding of untrusted queries (issue 16, finding 2): ``provenance.images.decode_query``.

A 236 KB all-zero 9000 x 9000 PNG sent to ``POST /v1/lookup`` took 12-15 s and 2.7 GB: the query was decoded at
full size, then again by every hasher. Queries over the bound are now decoded shrunk, once; queries within it are
decoded exactly as before (same pixels, hashers given the same bytes), so lookups of normal images do not change.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from provenance.errors import InvalidImageError
from provenance.images import QUERY_DECODE_SIDE, check_query_header, decode_query, decode_rgb

ROOT = Path(__file__).resolve().parents[2]
LIMITS = {"max_bytes": 200_000_000, "max_pixels": 100_000_000}


def _encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)


@pytest.mark.parametrize(("size", "fmt"), [((768, 512), "PNG"), ((2048, 1536), "JPEG"), ((1200, 2048), "WEBP")])
def test_queries_within_the_bound_decode_exactly_as_before(size: tuple[int, int], fmt: str) -> None:
    data = _encode(_photo_like(*size), fmt)
    query = decode_query(data, **LIMITS)
    assert not query.shrunk and query.hash_input is data  # the hashers see the uploaded bytes themselves
    assert np.array_equal(query.rgb, decode_rgb(data, **LIMITS))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF"])
def test_larger_queries_are_decoded_shrunk_by_a_whole_factor(fmt: str) -> None:
    img = _photo_like(4200, 2520, seed=1)
    data = _encode(img, fmt, **({"compress_level": 1} if fmt == "PNG" else {}))
    query = decode_query(data, **LIMITS)
    height, width = query.rgb.shape[:2]
    assert (query.width, query.height) == (4200, 2520) and query.shrunk
    assert 1024 < max(width, height) <= QUERY_DECODE_SIDE  # more than lookup's 1024 px SIFT side survives
    assert abs(width / height - 5 / 3) < 0.01
    # The same picture: close to a plain resize of the full decode (JPEG's DCT scaling differs a little).
    full = np.asarray(Image.fromarray(decode_rgb(data, **LIMITS)).resize((width, height), Image.Resampling.BOX))
    assert np.abs(full.astype(int) - query.rgb.astype(int)).mean() < 3
    hashed = Image.open(io.BytesIO(query.hash_input))
    assert hashed.format == "PNG" and hashed.size == (width, height)


def test_exif_orientation_is_applied_to_the_shrunk_decode() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    data = _encode(_photo_like(4800, 300), "JPEG", exif=exif.tobytes())
    assert decode_rgb(data, **LIMITS).shape[:2] == (4800, 300)
    shrunk = decode_query(data, **LIMITS).rgb
    assert shrunk.shape[0] > shrunk.shape[1] and max(shrunk.shape[:2]) <= QUERY_DECODE_SIDE


def test_palette_and_16_bit_queries_shrink_without_losing_their_values() -> None:
    ramp = np.tile(np.linspace(0, 65535, 4800).astype(np.uint16), (200, 1))
    wide = decode_query(_encode(Image.fromarray(ramp), "PNG"), **LIMITS).rgb
    assert wide[:, :10].mean() < 10 and wide[:, -10:].mean() > 245  # not clipped to white
    palette = _photo_like(4800, 300).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    shrunk = decode_query(_encode(palette, "PNG"), **LIMITS).rgb
    full = decode_rgb(_encode(palette, "PNG"), **LIMITS)
    small = np.asarray(Image.fromarray(full).resize(shrunk.shape[1::-1], Image.Resampling.BOX))
    assert np.abs(small.astype(int) - shrunk.astype(int)).mean() < 3  # colours averaged, not palette indices


@pytest.mark.parametrize("size", [(1, 1), (31, 64), (4000, 31)])
def test_every_side_must_reach_32_px_in_the_header_check_and_the_decode(size: tuple[int, int]) -> None:
    data = _encode(Image.new("RGB", size), "PNG")
    for check in (check_query_header, decode_query):
        with pytest.raises(InvalidImageError, match="too small"):
            check(data, **LIMITS)


def test_the_header_check_refuses_without_decoding() -> None:
    with pytest.raises(InvalidImageError, match="exceeds the limit"):
        check_query_header(_encode(Image.new("L", (2000, 2000)), "PNG"), max_bytes=10**9, max_pixels=1_000_000)
    with pytest.raises(InvalidImageError, match="not an image"):
        check_query_header(b"GIF89a? no", **LIMITS)
    assert check_query_header(_encode(Image.new("RGB", (64, 48)), "PNG"), **LIMITS).media_type == "image/png"


_MEASURE = textwrap.dedent('''
    import io, json, sys, time
    from pathlib import Path
    import numpy as np
    from PIL import Image
    from provenance.config import Settings
    from provenance.hashing import PHashHasher
    from provenance.index import HashIndex
    from provenance.lookup.service import Channels, Lookup
    from provenance.services import open_ledger

    def kb(field):
        line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field + ":"))
        return int(line.split()[1])

    buf = io.BytesIO()
    Image.fromarray(np.zeros((9000, 9000, 3), np.uint8)).save(buf, "PNG", optimize=True)
    bomb = buf.getvalue()
    settings = Settings(data_dir=Path(sys.argv[1]))
    ledger = open_ledger(settings)
    lookup = Lookup(ledger, HashIndex(settings.data_dir, ledger.engine), hashers=(PHashHasher(),),
                    channels=Channels(sensitive="phash", tolerant=()), decode_max_side=int(sys.argv[2]))
    warm = io.BytesIO()
    Image.new("RGB", (300, 200), "grey").save(warm, "PNG")
    lookup.lookup(warm.getvalue())  # imports and index files, before the measurement
    rss = kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    start = time.perf_counter()
    verdict = lookup.lookup(bomb)
    print(json.dumps({"added_mb": (kb("VmHWM") - rss) / 1024, "seconds": time.perf_counter() - start,
                      "verdict": verdict.verdict}))
''')


def _measure(tmp_path: Path, max_side: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(tmp_path / f"data-{max_side}"), str(max_side)],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to read peak memory")
def test_a_9000_px_zero_png_lookup_stays_within_a_bounded_memory(tmp_path: Path) -> None:
    """The reported query on a real Lookup (pHash channel; the network hashers are measured by
    benchmarks/bench_hostile_pixels.py). Its full-size RGB decode alone is 243 MB: the old path held two copies and
    more (~900 MB); the bounded decode peaks at about one."""
    bounded = _measure(tmp_path, QUERY_DECODE_SIDE)
    assert bounded["verdict"] == "no_match"
    assert bounded["added_mb"] < 450, bounded
    unbounded = _measure(tmp_path, 10**9)  # the old behaviour, for contrast: proves the measurement can fail
    assert unbounded["added_mb"] > bounded["added_mb"] + 200, (bounded, unbounded)
