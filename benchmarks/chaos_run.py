"""The chaos scenarios of tests/chaos/ at full length, and the fault table of docs/chaos.md.

Usage (from the repository root; ``-m`` so that the harness in tests/chaos/ imports):

    .venv/bin/python -m benchmarks.chaos_run [--ipfs-outage 30] [--evm-outage 30] [--disk-outage 30]
        [--visibility-timeout 30] [--production-retries] [--write-doc docs/chaos.md] [--only NAME ...]

Starts private Redis, PostgreSQL, js-ipfs and ganache, ``provenance serve`` (Celery queue) and two ``provenance
worker`` processes (tests/chaos/topology.py), then runs every fault while uploads and lookups flow, judges each
(tests/chaos/scenarios.py: lost, duplicated, clear refusals, lookups, ``provenance audit``) and prints the table.
``--write-doc`` replaces the generated part of docs/chaos.md (between its two markers) with this run's table.
Differences from the CI run (tests/chaos/test_faults.py): the outages last 30 s instead of 6-10 s, the flow runs
longer around each fault, and ``--production-retries`` uses the shipped retry back-off (2 s doubling, at most 8
retries) instead of the CI's 0.5 s..4 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

try:
    from tests.chaos import scenarios
    from tests.chaos.load import ImageSource
    from tests.chaos.topology import Timings, start_topology
except ModuleNotFoundError as exc:  # run as a file instead of a module
    raise SystemExit(f"run it from the repository root as: .venv/bin/python -m benchmarks.chaos_run ({exc})") from exc

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- chaos_run: begin -->", "<!-- chaos_run: end -->"
SCENARIOS = ("worker_kill", "redis_restart", "postgres_restart", "ipfs_outage", "evm_outage", "api_kill",
             "disk_full")
#: Not a fault the service must survive: what Redis without persistence costs. Only with --only; runs last.
DEMONSTRATIONS = ("redis_without_persistence",)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ipfs-outage", type=float, default=30.0)
    ap.add_argument("--evm-outage", type=float, default=30.0)
    ap.add_argument("--disk-outage", type=float, default=30.0)
    ap.add_argument("--restart-outage", type=float, default=5.0, help="seconds Redis / PostgreSQL stay down")
    ap.add_argument("--visibility-timeout", type=int, default=30)
    ap.add_argument("--production-retries", action="store_true",
                    help="the shipped retry back-off (PROVENANCE_INGEST_RETRY_BACKOFF_S=2, _MAX_S=300, 8 retries)")
    ap.add_argument("--upload-interval", type=float, default=0.6,
                    help="seconds between uploads, for each of the 2 uploaders (CI: 1.2)")
    ap.add_argument("--before", type=float, default=5.0, help="seconds of flow before each fault")
    ap.add_argument("--after", type=float, default=10.0, help="seconds of flow after each heal")
    ap.add_argument("--only", nargs="*", choices=SCENARIOS + DEMONSTRATIONS, default=list(SCENARIOS))
    ap.add_argument("--write-doc", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write the outcomes as JSON")
    args = ap.parse_args()

    timings = Timings(visibility_timeout_s=args.visibility_timeout)
    if args.production_retries:
        timings = Timings(visibility_timeout_s=args.visibility_timeout, retry_backoff_s=2.0,
                          retry_backoff_max_s=300.0, max_retries=8)
    t0 = time.monotonic()
    topo = start_topology(timings=timings)
    print(f"topology up in {time.monotonic() - t0:.1f} s: API {topo.api.base}, state in {topo.tmp}", flush=True)
    outcomes: list[scenarios.FaultOutcome] = []
    demos: list[scenarios.FaultOutcome] = []  # what an unsupported set-up costs: expected to lose
    failed = False
    try:
        images = ImageSource(start=0)
        h = scenarios.Harness(topo, images, scenarios.seed(topo, images), settle_timeout_s=600.0,
                              upload_interval_s=args.upload_interval)
        flow = {"before_s": args.before, "after_s": args.after}
        runs = {
            "worker_kill": lambda: scenarios.worker_kill(h, **flow),
            "redis_restart": lambda: scenarios.redis_restart(h, outage_s=args.restart_outage, **flow),
            "postgres_restart": lambda: scenarios.postgres_restart(h, outage_s=args.restart_outage, **flow),
            "ipfs_outage": lambda: scenarios.ipfs_outage(h, outage_s=args.ipfs_outage, **flow),
            "evm_outage": lambda: scenarios.evm_outage(h, outage_s=args.evm_outage, **flow),
            "api_kill": lambda: scenarios.api_kill(h, **flow),
            "disk_full": lambda: scenarios.disk_full(h, outage_s=args.disk_outage, **flow),
            "redis_without_persistence": lambda: scenarios.redis_restart_without_persistence(
                h, outage_s=args.restart_outage, **flow),
        }
        for name in sorted(args.only, key=lambda n: n in DEMONSTRATIONS):  # demonstrations last
            if name == "disk_full" and topo.disk is None:
                print("disk_full: skipped (no tmpfs could be mounted for the data directory)", flush=True)
                continue
            scenarios.ensure_healthy(h)
            started = time.monotonic()
            outcome = runs[name]()
            (demos if name in DEMONSTRATIONS else outcomes).append(outcome)
            failed |= not outcome.ok and name not in DEMONSTRATIONS
            print(f"{outcome.row()}  ({time.monotonic() - started:.0f} s)\n  notes: {outcome.notes}\n"
                  f"  refusals: {outcome.refusals}", flush=True)
            for problem in outcome.problems[:10]:
                print(f"  PROBLEM: {problem[:600]}", flush=True)
    finally:
        topo.close(keep_files=failed)
    print("\n" + scenarios.table(outcomes + demos))
    settings = (f"2 uploaders, one upload every {args.upload_interval:g} s each; "
                f"outages: IPFS {args.ipfs_outage:.0f} s, EVM {args.evm_outage:.0f} s, disk full "
                f"{args.disk_outage:.0f} s, Redis/PostgreSQL down {args.restart_outage:.0f} s; flow "
                f"{args.before:.0f} s before and {args.after:.0f} s after each fault; visibility timeout "
                f"{timings.visibility_timeout_s} s; retry back-off {timings.retry_backoff_s} s doubling to "
                f"{timings.retry_backoff_max_s} s, at most {timings.max_retries} retries per step")
    if args.json:
        args.json.write_text(json.dumps([o.__dict__ for o in outcomes + demos], indent=2, default=str))
    if args.write_doc:
        write_doc(args.write_doc, outcomes, settings, demos)
    sys.exit(1 if failed else 0)


def write_doc(path: Path, outcomes: list[scenarios.FaultOutcome], settings: str,
              demos: list[scenarios.FaultOutcome] | None = None) -> None:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0]
    lines = [BEGIN, "",
             f"Run of `benchmarks/chaos_run.py` on {when} ({platform.machine()}, {os.cpu_count()} cores, load "
             f"average {load:.1f} at the end): {settings}.", "", scenarios.table(outcomes), "",
             "Per fault (refusals by status and code; what else was measured):", ""]
    for o in outcomes:
        refusals = ", ".join(f"{k} x{v}" for k, v in sorted(o.refusals.items())) or "none"
        lines.append(f"- **{o.fault}**: refusals {refusals}; {'; '.join(o.notes)}.")
    if demos:
        lines += ["", "Not a supported set-up, run to show what it costs (expected to lose; the supported Redis runs "
                  "with its append-only file, as above):", "", scenarios.table(demos), ""]
        lines += [f"- **{o.fault}**: {'; '.join(o.notes)}." for o in demos]
    lines += ["", END]
    block = "\n".join(lines)
    text = path.read_text() if path.exists() else f"# Chaos\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
