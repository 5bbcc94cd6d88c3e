"""Time and peak memory of hostile-pixel requests (issue 16, findings 2 and 3), before and after the bounded decode.

The query is the hostile test's: an all-zero 9000 x 9000 RGB PNG (~236 KB, 81 Mpx, under the pixel limit). Each
measurement runs in a fresh process on the real service (embedded default, the shipped hashers, one registered
photo), after a warm-up lookup of a normal photo so that loaded models are not counted. Peak memory is the rise of
the process's resident high-water mark (VmHWM, reset through /proc/self/clear_refs) over its RSS before the call.

* ``lookup``: ``Lookup.lookup`` (what ``POST /v1/lookup`` runs). *before* = the old path (decode at full size, every
  hasher decoding the original bytes again), reproduced exactly with ``decode_max_side`` set beyond any image.
* ``bycontent``: the hashing of ``POST /matches/byContent``: every hasher on the bytes (*before*) or on the
  bounded decode (*after*).
* ``thumbnail``: one ``GET /v1/records/{cid}/image?size=256`` render: the old ``make_thumbnail`` (kept below as
  ``legacy_thumbnail``) vs the new one.

Usage: python benchmarks/bench_hostile_pixels.py [--side 9000] [--cases lookup,bycontent,thumbnail]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "data" / "photos" / "kodak24" / "kodim23.png"


def zero_png(side: int) -> bytes:
    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((side, side, 3), np.uint8)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def legacy_thumbnail(data: bytes, size: int) -> bytes:
    """``provenance.api.images.make_thumbnail`` as it was before the fix (full-size decode and RGB conversion)."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as img:
        img.draft("RGB", (size, size))
        thumb = ImageOps.exif_transpose(img)
        thumb = thumb.convert("RGB") if thumb.mode != "RGB" else thumb.copy()
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    thumb.save(out, "JPEG", quality=85, optimize=True)
    return out.getvalue()


def child(case: str, mode: str, data_dir: Path, query_path: Path) -> dict[str, object]:
    from provenance.config import Settings
    from provenance.images import decode_query
    from provenance.logging import configure_logging
    from provenance.services import open_service

    configure_logging("WARNING")
    settings = Settings(data_dir=data_dir)
    service = open_service(settings)
    lookup = service.lookup
    cfg = service.ledger.config
    lookup.lookup(PHOTO.read_bytes())  # warm-up: models loaded, index opened
    query = query_path.read_bytes()
    if mode == "before":
        lookup.decode_max_side = 10**9

    def run() -> None:
        if case == "lookup":
            lookup.lookup(query)
        elif case == "bycontent":
            if mode == "before":
                hash_input = query
            else:
                hash_input = decode_query(query, max_bytes=cfg.max_image_bytes, max_pixels=cfg.max_image_pixels,
                                          max_side=settings.lookup_decode_max_side).hash_input
            for hasher in service.ledger.hashers:
                hasher.hash_image(hash_input)
        elif case == "thumbnail":
            from provenance.api.images import make_thumbnail

            if mode == "before":
                legacy_thumbnail(query, 256)
            else:
                make_thumbnail(query, 256, max_bytes=cfg.max_image_bytes, max_pixels=cfg.max_image_pixels)
        else:
            raise SystemExit(f"unknown case {case}")

    rss = _rss_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    peak = _rss_kb("VmHWM")
    return {"case": case, "mode": mode, "seconds": round(seconds, 2), "rss_mb": round(rss / 1024),
            "added_mb": round((peak - rss) / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=9000)
    parser.add_argument("--cases", default="lookup,bycontent,thumbnail")
    parser.add_argument("--empty", action="store_true", help="register no photo (lookups then find no candidate)")
    parser.add_argument("--child", nargs=4, metavar=("CASE", "MODE", "DATA_DIR", "QUERY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        case, mode, data_dir, query = args.child
        print(json.dumps(child(case, mode, Path(data_dir), Path(query))))
        return

    from provenance.config import Settings
    from provenance.logging import configure_logging
    from provenance.metadata import PublisherMetadata
    from provenance.services import open_service

    configure_logging("WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        service = open_service(Settings(data_dir=data_dir))
        if not args.empty:
            service.ledger.add_publisher("bench")
            service.pipeline.ingest(PHOTO.read_bytes(), publisher="bench", metadata=PublisherMetadata(),
                                    source="photo")
        service.close()
        query = Path(tmp) / "zeros.png"
        query.write_bytes(zero_png(args.side))
        print(f"query: {args.side}x{args.side} all-zero RGB PNG, {query.stat().st_size / 1024:.0f} KiB; "
              f"{'no' if args.empty else 'one'} registered photo")
        print(f"{'case':<10} {'mode':<7} {'seconds':>8} {'peak added (MB)':>16}")
        for case in args.cases.split(","):
            for mode in ("before", "after"):
                out = subprocess.run([sys.executable, __file__, "--child", case, mode, str(data_dir), str(query)],
                                     capture_output=True, text=True, cwd=ROOT)
                if out.returncode != 0:
                    raise SystemExit(f"{case} {mode} failed:\n{out.stderr[-3000:]}")
                res = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"{case:<10} {mode:<7} {res['seconds']:>8} {res['added_mb']:>16}", flush=True)


if __name__ == "__main__":
    main()
