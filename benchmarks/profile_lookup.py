"""Where a lookup's time goes: the stage timings ``Lookup.lookup`` records (decode, hashes, search, query features,
verification with the aligned comparison, object changes), per reference size, and optionally a cProfile of the
whole run, for a spread of a dataset's queries.

Set-up: a fresh embedded service ingests the dataset's references (no distractors: the index search at 1M is
measured by ``bench_index.py``); one lookup warms the models up, then every ``--every``-th pair's query is timed.
``--verdicts-out`` keeps each verdict; ``--serve`` answers query numbers on stdin instead (``ab_lookup.py`` runs two
builds that way, interleaved).

    .venv/bin/python benchmarks/profile_lookup.py --dataset benchmarks/out/world-photos --every 10 [--cprofile 25]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from provenance.bench.dataset import load_dataset
from provenance.config import Settings
from provenance.logging import configure_logging
from provenance.records import PublisherMetadata
from provenance.services import open_service


def reference_side(reference: str) -> str:
    """The size class of a world reference (``<photo>@<side>.jpg``), as the system benchmark groups them."""
    side = int(Path(reference).stem.rsplit("@", 1)[1]) if "@" in reference else 0
    return "256" if side <= 256 else "<=384" if side <= 384 else "<=512" if side <= 512 else ">512"


def verdict_row(verdict, titles: dict[str, str]) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """What two builds must agree on, and the timings they may not."""
    return {"verdict": verdict.verdict, "record": verdict.record_cid and titles[verdict.record_cid],
            "confidence": verdict.confidence, "confident": verdict.confident, "regions": len(verdict.regions),
            "explanation": verdict.explanation, "timings_ms": verdict.timings_ms}


def serve(service, ds, titles: dict[str, str]) -> int:  # type: ignore[no-untyped-def]
    print(json.dumps({"ready": len(ds.pairs)}), flush=True)
    for line in sys.stdin:
        pair = ds.pairs[int(line)]
        verdict = service.lookup.lookup(ds.path(pair.query).read_bytes())
        print(json.dumps({"pair": int(line), **verdict_row(verdict, titles)}), flush=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--every", type=int, default=10, help="look up every n-th query")
    ap.add_argument("--cprofile", type=int, default=0, help="print this many functions by cumulative time")
    ap.add_argument("--verdicts-out", type=Path, default=None,
                    help="write each query's verdict, record and confidence here (JSON lines), to compare two builds")
    ap.add_argument("--serve", action="store_true",
                    help="after ingest, answer query numbers (lines on stdin: an index into the dataset's pairs) "
                         "with one JSON line each (verdict and timings): what ab_lookup.py drives")
    ap.add_argument("--sort", default="cumulative", help="cProfile sort key (cumulative, tottime, ...)")
    ap.add_argument("--callers", default="", help="also print the callers of functions matching this pattern")
    args = ap.parse_args()

    configure_logging("WARNING")
    ds = load_dataset(args.dataset)
    pairs = ds.pairs[:: args.every]
    with tempfile.TemporaryDirectory() as tmp:
        service = open_service(Settings(data_dir=Path(tmp)))
        service.ledger.add_publisher("bench")
        titles: dict[str, str] = {}
        for ref in ds.references:
            titles[service.pipeline.ingest(ds.path(ref).read_bytes(), publisher="bench",
                                           metadata=PublisherMetadata(title=ref)).cid] = ref
        service.lookup.lookup(ds.path(pairs[0].query).read_bytes())  # warm-up: model loading is not a lookup
        if args.serve:
            return serve(service, ds, titles)
        stages: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        rows: list[dict] = []  # type: ignore[type-arg]
        profiler = cProfile.Profile() if args.cprofile else None
        t = time.perf_counter()
        for pair in pairs:
            data = ds.path(pair.query).read_bytes()
            if profiler is not None:
                profiler.enable()
            verdict = service.lookup.lookup(data)
            if profiler is not None:
                profiler.disable()
            rows.append({"query": pair.query, **verdict_row(verdict, titles)})
            for name, ms in verdict.timings_ms.items():
                stages[reference_side(pair.reference)][name].append(ms)
                stages["all"][name].append(ms)
        wall = time.perf_counter() - t
    if args.verdicts_out is not None:
        args.verdicts_out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(pairs)} lookups in {wall:.1f} s ({len(ds.references)} references registered)")
    names = sorted({n for s in stages.values() for n in s}, key=lambda n: (n == "total", n))
    print(f"{'size':<7}{'n':>5}" + "".join(f"{n:>16}" for n in names) + "   (median / mean ms)")
    for size in sorted(stages, key=lambda s: (s == "all", s)):
        row = stages[size]
        n = len(row.get("total", []))
        cells = [f"{np.median(row[x]):7.0f}/{np.mean(row[x]):<7.0f}" if row.get(x) else f"{'-':>15}" for x in names]
        print(f"{size:<7}{n:>5} " + " ".join(cells))
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats(args.sort)
        stats.print_stats(args.cprofile)
        if args.callers:
            stats.print_callers(args.callers)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
