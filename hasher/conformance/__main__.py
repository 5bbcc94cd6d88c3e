"""``python -m hasher.conformance generate|check``: write the conformance vectors, or check codes against them.

``check`` recomputes every code with this checkout's hasher (``--device cuda`` on a GPU), or compares the codes of
another implementation (``--codes FILE``: JSON lines or CSV with ``path,model_id,hex``), and prints, per image and
model, the number of differing bits (``*`` marks flips confined to the bits the vectors list as fragile). Exit
status: 0 when every compared code is identical (or within ``--max-bits``), 1 when one differs, 2 when an input is
missing or is not the file the vectors name.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from hasher.conformance import (
    DEFAULT_DATA,
    VECTORS,
    ModelSpec,
    compare,
    compute,
    environment,
    load_vectors,
    read_codes,
    selected_paths,
    sha256_bytes,
    shipped_models,
    vectors_obj,
)


def _setup(device: str, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")


def generate(args: argparse.Namespace) -> int:
    _setup(args.device, args.threads)
    data = Path(args.data)
    paths = selected_paths(data)
    specs = shipped_models(args.oscar_weights)
    t0 = time.perf_counter()
    codes = compute(data, paths, specs, device=args.device,
                    progress=None if args.quiet else (lambda m: print(m, file=sys.stderr)))
    seconds = time.perf_counter() - t0
    obj = vectors_obj(data, paths, specs, codes, environment(args.device, args.threads))
    Path(args.out).write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(paths)} images x {len(obj['models'])} models in {seconds:.1f} s")
    return 0


def check(args: argparse.Namespace) -> int:
    vectors = load_vectors(Path(args.vectors))
    data = Path(args.data)
    models = args.model or None
    bad: dict[str, str] = {}
    for row in vectors["images"]:
        f = data / row["path"]
        if not f.is_file():
            bad[row["path"]] = f"missing: {f}"
        elif sha256_bytes(f.read_bytes()) != row["sha256"]:
            bad[row["path"]] = "input differs from the vectors' (sha256)"
    t0 = time.perf_counter()
    if args.codes:
        got = read_codes(Path(args.codes))
    else:
        _setup(args.device, args.threads)
        specs = [ModelSpec.from_obj(m) for m in vectors["models"] if models is None or m["model_id"] in models]
        paths = [r["path"] for r in vectors["images"] if r["path"] not in bad]
        def note(message: str) -> None:  # always say which models cannot be checked here
            if message.startswith("skipped") or args.verbose:
                print(message, file=sys.stderr)

        computed = compute(data, paths, specs, device=args.device, margins=False, progress=note)
        got = {p: {m: c.hex for m, c in codes.items()} for p, codes in computed.items()}
    seconds = time.perf_counter() - t0
    diffs = compare(vectors, got, models=models, bad_inputs=bad)
    compared = [d for d in diffs if d.bits is not None]
    failed = [d for d in compared if d.bits > args.max_bits]
    if args.json:
        print(json.dumps({"device": args.device if not args.codes else "codes file", "seconds": round(seconds, 1),
                          "compared": len(compared), "differing": len([d for d in compared if d.bits]),
                          "results": [asdict(d) for d in diffs]}, indent=1))
    else:
        for d in diffs:
            if d.bits is None:
                print(f"{d.path:45s} {d.model_id:24s} --  {d.note}")
            elif d.bits or args.verbose:
                mark = "*" if d.only_fragile else ""
                print(f"{d.path:45s} {d.model_id:24s} {d.bits:2d}{mark} bits differ" +
                      (f" (positions {list(d.flipped)})" if d.bits else ""))
        per_model: dict[str, list[int]] = {}
        for d in compared:
            per_model.setdefault(d.model_id, []).append(d.bits or 0)
        for mid, bits in per_model.items():
            print(f"{mid}: {len(bits)} images, {sum(1 for b in bits if b)} differ, {sum(bits)} bits in all, "
                  f"at most {max(bits)} in one")
        print(f"{len(compared)} codes compared in {seconds:.1f} s; {len(failed)} beyond {args.max_bits} bits")
    if bad or len(compared) < len(diffs):
        return 2
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hasher.conformance", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="the shared data folder (default: %(default)s)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="compute and write the vectors")
    g.add_argument("--out", default=str(VECTORS))
    g.add_argument("--oscar-weights", type=Path, action="append", default=[],
                   help="another OSCAR-Net weights file to include (the shipped ones always are)")
    g.add_argument("--quiet", action="store_true")
    c = sub.add_parser("check", help="recompute (or read) the codes and report differing bits")
    c.add_argument("--vectors", default=str(VECTORS))
    c.add_argument("--codes", help="compare this file's codes (JSON lines or CSV: path,model_id,hex) instead")
    c.add_argument("--model", action="append", help="only this model id (repeatable)")
    c.add_argument("--max-bits", type=int, default=0, help="differences up to this many bits still pass")
    c.add_argument("--json", action="store_true")
    c.add_argument("--verbose", action="store_true", help="list identical codes too")
    args = ap.parse_args(argv)
    return generate(args) if args.cmd == "generate" else check(args)


if __name__ == "__main__":
    raise SystemExit(main())
