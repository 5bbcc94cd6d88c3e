"""A bounded loopback soak: mixed ingest and lookups at a fixed rate through the real services, with the memory of
every process sampled over time.

Usage (from the repository root; ``-m`` so that the harness in tests/chaos/ imports):

    .venv/bin/python -m benchmarks.soak [--minutes 30] [--ingest-rate 0.5] [--lookup-rate 0.5]
        [--read-rate 2] [--warmup-minutes 5] [--growth-bound 0.2] [--json OUT] [--write-doc docs/load.md]

The topology is the chaos harness's (tests/chaos/topology.py): ``provenance serve`` with the Celery queue and two
``provenance worker`` processes, private Redis and PostgreSQL, a js-ipfs daemon and ganache. Traffic, each stream
on its own clock (a request that overruns its slot delays the next one, it never bursts to catch up):

* ``POST /v1/assets``: new 320x240 photos (distinct crops of the Kodak set), ``--ingest-rate`` per second;
* ``POST /v1/lookup``: a re-shared copy of a registered photo, ``--lookup-rate`` per second;
* reads, ``--read-rate`` per second in turn: ``GET /v1/records/{cid}``, ``/proof``, ``GET /matches/byBinding``,
  ``GET /v1/tasks/{id}``;
* ``GET /readyz`` every 10 s.

Every 10 s the resident set (VmRSS from /proc, summed over each process's children) of the API, each worker,
Redis, PostgreSQL, the IPFS daemon and ganache is sampled. Printed: RSS over time per process, p50/p99 latency
per endpoint, errors by status and code, ingests accepted / finished / failed and their end-to-end latency.

**Growth bound checked**: for the API and each worker, the RSS at the end (median of the last 3 samples) is at
most ``--growth-bound`` (20 %) above its RSS after the warm-up (median of the 3 samples from the end of
``--warmup-minutes``). The data-holding services (PostgreSQL, Redis, IPFS, ganache) grow with the data by design
(task statuses expire after a day; the database and blocks are the ledger): their RSS is reported, not bounded.
Exit status 1 when the bound or any error check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx

try:
    from tests.chaos import scenarios
    from tests.chaos.load import ImageSource, LookupTargets
    from tests.chaos.topology import Timings, Topology, start_topology
except ModuleNotFoundError as exc:
    raise SystemExit(f"run it from the repository root as: .venv/bin/python -m benchmarks.soak ({exc})") from exc

BEGIN, END = "<!-- soak: begin -->", "<!-- soak: end -->"
SAMPLE_EVERY_S = 10.0


# --- memory ------------------------------------------------------------------------------------------------------
def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids[ppid].append(int(entry))
    return kids


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mib(pid: int, kids: dict[int, list[int]]) -> float:
    """VmRSS of ``pid`` and all its descendants, MiB (shared pages are counted in each process that maps them)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += _rss_kib(p)
        todo.extend(kids.get(p, ()))
    return total / 1024


def _pidfile(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def processes(topo: Topology) -> dict[str, int]:
    found: dict[str, int | None] = {"api": topo.api.pid}
    found.update({w.name: w.pid for w in topo.workers})
    found["redis"] = topo.redis.proc.pid if topo.redis.proc else None
    found["postgres"] = _pidfile(topo.postgres.data / "postmaster.pid")
    found["ipfs"] = _pidfile(topo.ipfs.repo / "daemon.pid")
    found["ganache"] = _pidfile(topo.chain.datadir / "ganache.pid")
    return {k: v for k, v in found.items() if v}


# --- traffic -----------------------------------------------------------------------------------------------------
@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    late: Counter[str] = field(default_factory=Counter)  # slots that started late (the previous request overran)
    tasks: dict[str, float] = field(default_factory=dict)  # task id -> submitted (monotonic)
    finished: dict[str, tuple[str, float]] = field(default_factory=dict)  # task id -> (state, seconds to finish)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, endpoint: str, seconds: float, resp: httpx.Response | None, exc: Exception | None) -> None:
        with self.lock:
            if resp is not None and resp.status_code < 400:
                self.latencies[endpoint].append(seconds)
            elif resp is not None:
                try:
                    body = resp.json()
                    code = body["error"]["code"] if "error" in body else (  # /readyz: what was not ready, and why
                        "; ".join(f"{n}: {body['checks'][n]['detail']}" for n in body.get("not_ready", [])) or "?")
                except Exception:  # noqa: BLE001
                    code = "?"
                self.errors[f"{endpoint}: {resp.status_code} {code}"] += 1
            else:
                self.errors[f"{endpoint}: no answer ({type(exc).__name__})"] += 1


class Traffic:
    def __init__(self, topo: Topology, images: ImageSource, targets: LookupTargets, args: argparse.Namespace) -> None:
        self.topo, self.images, self.targets, self.args = topo, images, targets, args
        self.stats = Stats()
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        a = self.args
        plans = [("ingest", a.ingest_rate, self._ingest), ("lookup", a.lookup_rate, self._lookup),
                 ("reads", a.read_rate, self._read), ("readyz", 0.1, self._readyz), ("tasks", 1.0, self._poll_tasks)]
        for name, rate, fn in plans:
            if rate > 0:
                t = threading.Thread(target=self._paced, args=(name, 1.0 / rate, fn), daemon=True, name=name)
                t.start()
                self.threads.append(t)

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)

    def _paced(self, name: str, every_s: float, fn) -> None:  # type: ignore[no-untyped-def]
        with httpx.Client(base_url=self.topo.api.base, timeout=120) as client:
            slot = time.monotonic()
            n = 0
            while not self.stop.is_set():
                fn(client, n)
                n += 1
                slot += every_s
                now = time.monotonic()
                if now > slot:  # overran: start the next one now, and do not try to catch up
                    with self.stats.lock:
                        self.stats.late[name] += 1
                    slot = now
                self.stop.wait(max(0.0, slot - now))

    def _call(self, client: httpx.Client, endpoint: str, method: str, url: str, **kw) -> httpx.Response | None:  # type: ignore[no-untyped-def]
        t0 = time.monotonic()
        resp = exc = None
        try:
            resp = client.request(method, url, **kw)
        except httpx.HTTPError as e:
            exc = e
        self.stats.record(endpoint, time.monotonic() - t0, resp, exc)
        return resp

    def _ingest(self, client: httpx.Client, _: int) -> None:
        t0 = time.monotonic()
        resp = self._call(client, "POST /v1/assets", "POST", "/v1/assets",
                          files={"file": ("soak.jpg", self.images.next(), "image/jpeg")},
                          headers={"Authorization": f"Bearer {self.topo.api_key}"})
        if resp is not None and resp.status_code == 202:
            with self.stats.lock:
                self.stats.tasks[resp.json()["task_id"]] = t0

    def _lookup(self, client: httpx.Client, _: int) -> None:
        resp = self._call(client, "POST /v1/lookup", "POST", "/v1/lookup",
                          files={"file": ("copy.jpg", self.targets.query_jpeg, "image/jpeg")})
        if resp is not None and resp.status_code == 200 and resp.json().get("verdict") != "match":
            with self.stats.lock:
                self.stats.errors[f"POST /v1/lookup: verdict {resp.json().get('verdict')}"] += 1

    def _read(self, client: httpx.Client, n: int) -> None:
        t = self.targets
        which = n % 4
        if which == 0:
            self._call(client, "GET /v1/records/{cid}", "GET", f"/v1/records/{t.record_cid}")
        elif which == 1:
            self._call(client, "GET /v1/records/{cid}/proof", "GET", f"/v1/records/{t.record_cid}/proof")
        elif which == 2:
            self._call(client, "GET /matches/byBinding", "GET", "/matches/byBinding",
                       params={"alg": t.binding_alg, "value": t.binding_hex})
        else:
            with self.stats.lock:
                some = next(iter(self.stats.finished), None)
            if some:
                self._call(client, "GET /v1/tasks/{id}", "GET", f"/v1/tasks/{some}")

    def _readyz(self, client: httpx.Client, _: int) -> None:
        self._call(client, "GET /readyz", "GET", "/readyz")

    def _poll_tasks(self, client: httpx.Client, _: int) -> None:
        """Follow every accepted ingest to its end (its end-to-end time, to within this poll's 1 s)."""
        with self.stats.lock:
            pending = [t for t in self.stats.tasks if t not in self.stats.finished]
        for task_id in pending[:50]:
            try:
                st = client.get(f"/v1/tasks/{task_id}").json()
            except (httpx.HTTPError, ValueError):
                continue
            if st.get("state") in ("succeeded", "failed"):
                with self.stats.lock:
                    self.stats.finished[task_id] = (st["state"], time.monotonic() - self.stats.tasks[task_id])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--warmup-minutes", type=float, default=5.0)
    ap.add_argument("--ingest-rate", type=float, default=0.5, help="uploads per second")
    ap.add_argument("--lookup-rate", type=float, default=0.5, help="full lookups per second")
    ap.add_argument("--read-rate", type=float, default=2.0, help="record / proof / soft-binding / task reads per s")
    ap.add_argument("--growth-bound", type=float, default=0.20)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--write-doc", type=Path, default=None)
    args = ap.parse_args()
    warmup_s = min(args.warmup_minutes * 60, args.minutes * 60 / 3)

    topo = start_topology(timings=Timings(anchor_every_s=60, anchor_every_records=200), disk_mb=None)
    print(f"topology up: API {topo.api.base}; soak of {args.minutes:g} min, warm-up {warmup_s / 60:.1f} min",
          flush=True)
    samples: list[tuple[float, dict[str, float]]] = []
    ok = True
    try:
        images = ImageSource(start=5000)
        traffic = Traffic(topo, images, scenarios.seed(topo, images), args)
        pids = processes(topo)
        t0 = time.monotonic()
        traffic.start()
        end = t0 + args.minutes * 60
        while time.monotonic() < end:
            kids = _children()
            sample = {name: round(tree_rss_mib(pid, kids), 1) for name, pid in pids.items()}
            samples.append((time.monotonic() - t0, sample))
            if len(samples) % 6 == 1:
                print(f"t={samples[-1][0] / 60:5.1f} min  RSS MiB {sample}  accepted {len(traffic.stats.tasks)} "
                      f"finished {len(traffic.stats.finished)}", flush=True)
            time.sleep(SAMPLE_EVERY_S)
        traffic.join()
        # let the last ingests finish (bounded), so that none is counted as lost for want of time
        drain_deadline = time.monotonic() + 300
        with httpx.Client(base_url=topo.api.base, timeout=30) as client:
            while time.monotonic() < drain_deadline and len(traffic.stats.finished) < len(traffic.stats.tasks):
                traffic._poll_tasks(client, 0)
                time.sleep(2)
        dead = [name for name, pid in pids.items() if not Path(f"/proc/{pid}").exists()]
        report, ok = summarise(args, warmup_s, samples, traffic.stats, dead)
        print(report)
        if args.json:
            args.json.write_text(json.dumps({"samples": samples, "latency": {k: sorted(v) for k, v in
                                                                            traffic.stats.latencies.items()},
                                             "errors": dict(traffic.stats.errors)}, indent=1))
        if args.write_doc:
            write_doc(args.write_doc, report)
    finally:
        topo.close()
    raise SystemExit(0 if ok else 1)


def summarise(args: argparse.Namespace, warmup_s: float, samples: list[tuple[float, dict[str, float]]],
              stats: Stats, dead: list[str]) -> tuple[str, bool]:
    ok = not dead
    lines = [f"Soak: {args.minutes:g} min at {args.ingest_rate:g} uploads/s, {args.lookup_rate:g} full lookups/s, "
             f"{args.read_rate:g} reads/s and a readiness probe every 10 s, through `provenance serve` (Celery) + 2 "
             f"`provenance worker`, Redis, PostgreSQL, js-ipfs, ganache (run "
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}, load average {os.getloadavg()[0]:.1f} at the end).",
             ""]
    names = list(samples[0][1]) if samples else []
    marks = sorted({0.0, warmup_s, *[args.minutes * 60 * f for f in (0.25, 0.5, 0.75)], samples[-1][0]})
    lines.append("| process | " + " | ".join(f"t={m / 60:.0f} min" for m in marks) + " | growth after warm-up | bound |")
    lines.append("|---" * (len(marks) + 3) + "|")

    def near(t: float, name: str) -> float:
        return min(samples, key=lambda s: abs(s[0] - t))[1].get(name, 0.0)

    def median_around(i: int, name: str) -> float:
        window = samples[max(0, i - 1):i + 2] if i >= 0 else samples[-3:]
        return statistics.median(s[1].get(name, 0.0) for s in window)

    warm_i = min(range(len(samples)), key=lambda i: abs(samples[i][0] - warmup_s)) if samples else 0
    for name in names:
        base, last = median_around(warm_i + 1, name), median_around(-1, name)
        growth = (last - base) / base if base else 0.0
        bounded = name == "api" or name.startswith("worker")
        verdict = "n/a (holds data)"
        if bounded:
            verdict = "ok" if growth <= args.growth_bound else "EXCEEDED"
            ok &= growth <= args.growth_bound
        lines.append(f"| {name} | " + " | ".join(f"{near(m, name):.0f} MiB" for m in marks)
                     + f" | {growth * 100:+.1f} % | {verdict} |")
    lines += ["", f"Growth bound: API and workers end (median of the last 3 samples) at most "
                  f"{args.growth_bound * 100:.0f} % above their RSS after the {warmup_s / 60:.1f}-minute warm-up "
                  f"(median of 3 samples). RSS sampled every {SAMPLE_EVERY_S:.0f} s from /proc (VmRSS, process and "
                  "children).", "", "| endpoint | requests ok | p50 | p99 | max |", "|---|---|---|---|---|"]
    for endpoint, values in sorted(stats.latencies.items()):
        lines.append(f"| {endpoint} | {len(values)} | {pct(values, 0.5) * 1000:.0f} ms | "
                     f"{pct(values, 0.99) * 1000:.0f} ms | {max(values) * 1000:.0f} ms |")
    done = [s for s, _ in stats.finished.values()]
    e2e = [sec for s, sec in stats.finished.values() if s == "succeeded"]
    unfinished = len(stats.tasks) - len(stats.finished)
    failed = done.count("failed")
    ok &= not stats.errors and not failed and not unfinished
    lines += ["", f"Ingests: {len(stats.tasks)} accepted, {done.count('succeeded')} succeeded, {failed} failed, "
                  f"{unfinished} unfinished after the drain; upload to record p50 {pct(e2e, 0.5):.1f} s, p99 "
                  f"{pct(e2e, 0.99):.1f} s (each task polled every second).",
              f"Errors: {dict(stats.errors) or 'none'}; processes that died: {dead or 'none'}; slots started late "
              f"(the previous request overran): {dict(stats.late) or 'none'}."]
    return "\n".join(lines), ok


def write_doc(path: Path, report: str) -> None:
    block = f"{BEGIN}\n\n{report}\n\n{END}"
    text = path.read_text() if path.exists() else f"# Load and soak\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
