"""How often the source is still found when an edit replaces most of the picture (issue 13's stretch goal: AI edits
that replace the background or regenerate a large object came back ``no_match``).

Set-up as ``attribution_system.py``: a fresh embedded service ingests every reference of a ``make-dataset`` split
through the real pipeline; then, for ``--limit`` photos (each at its largest registered size), the two edits of
``provenance.bench.large_edits`` (background replaced around a kept subject; a 35-65 % region regenerated), donors
drawn from the split's unrelated photos (never ingested), each re-shared (resized to 60-100 %, JPEG 70-95), go
through ``Lookup.lookup``. Reported per edit, with Wilson 95 % intervals: the source among the candidates (any of
its registered sizes), the source verified, the verdict (``altered`` with the right source is the goal, ``match``
the error that matters), and the share of the picture changed.

    .venv/bin/python benchmarks/bench_large_edits.py --dataset benchmarks/out/world-test --limit 100
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from attribution_system import _long_side, photo_of  # benchmarks/ is on the path when a script there runs
from PIL import Image

from provenance.bench import platform as P
from provenance.bench.dataset import load_dataset
from provenance.bench.large_edits import LARGE_EDITS
from provenance.bench.manipulations import EditContext
from provenance.bench.metrics import wilson
from provenance.config import Settings
from provenance.records import PublisherMetadata
from provenance.services import open_service


def rate(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k / n:7.2%} ({k}/{n}) [{lo:.1%}, {hi:.1%}]" if n else "n/a"


def reshare(img: np.ndarray, rng: np.random.Generator) -> bytes:
    """Resized to 60-100 % and saved as JPEG 70-95 (4:2:0), with the platform copies' own helpers."""
    out = P.resize_share(Image.fromarray(img), float(rng.uniform(0.6, 1.0)))
    return P.encode(out, P.Encoding("JPEG", int(rng.integers(70, 96))))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=100, help="photos edited (each by every large edit)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/large-edits.json"))
    args = ap.parse_args()

    ds = load_dataset(args.dataset)
    donors = tuple(str(ds.path(d)) for d in ds.distractors)
    largest: dict[str, tuple[str, int]] = {}  # photo -> (its largest registered reference, long side)
    for ref in ds.references:
        side = _long_side(ds.path(ref))
        best = largest.get(photo_of(ref))
        if best is None or side > best[1]:
            largest[photo_of(ref)] = (ref, side)
    photos = sorted(largest)[:: max(1, len(largest) // args.limit)][: args.limit]
    rng = np.random.default_rng(args.seed)
    rows: list[dict] = []  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as tmp:
        service = open_service(Settings(data_dir=Path(tmp)))
        service.ledger.add_publisher("bench")
        cids: dict[str, set[str]] = defaultdict(set)
        t = time.perf_counter()
        for ref in ds.references:
            cid = service.pipeline.ingest(ds.path(ref).read_bytes(), publisher="bench",
                                          metadata=PublisherMetadata(title=ref)).cid
            cids[photo_of(ref)].add(cid)
        print(f"ingested {len(ds.references)} references in {time.perf_counter() - t:.0f} s; "
              f"{len(photos)} photos x {len(LARGE_EDITS)} edits", flush=True)
        for photo in photos:
            ref = largest[photo][0]
            with Image.open(ds.path(ref)) as im:
                original = np.asarray(im.convert("RGB"))
            for kind, edit in LARGE_EDITS.items():
                edited, _, info = edit(original, rng, EditContext(donors=donors))
                v = service.lookup.lookup(reshare(edited, rng))
                own = cids[photo]
                rows.append({"photo": photo, "kind": kind, "mask_share": info["mask_share"], "verdict": v.verdict,
                             "right_source": v.record_cid in own,
                             "found": any(c.record_cid in own for c in v.candidates),
                             "verified": any(c.record_cid in own and c.passed for c in v.candidates)})
        service.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))
    for kind in LARGE_EDITS:
        g = [r for r in rows if r["kind"] == kind]
        n = len(g)
        shares = [r["mask_share"] for r in g]
        print(f"\n{kind}: {n} queries, {np.min(shares):.0%}-{np.max(shares):.0%} of the picture replaced "
              f"(median {np.median(shares):.0%})")
        print(f"  source among the candidates  {rate(sum(r['found'] for r in g), n)}")
        print(f"  source verified              {rate(sum(r['verified'] for r in g), n)}")
        altered = sum(r["verdict"] == "altered" and r["right_source"] for r in g)
        print(f"  altered, right source        {rate(altered, n)}")
        print(f"  match (an edit certified)    {rate(sum(r['verdict'] == 'match' for r in g), n)}")
        print(f"  verdicts                     {dict(Counter(r['verdict'] for r in g))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
