"""Bounded load test of the HTTP API on loopback: N concurrent public lookups, throughput and latency percentiles.

Usage: python benchmarks/bench_api_load.py [--url http://127.0.0.1:PORT] [--lookups 60] [--concurrency 4]
                                           [--bindings 2000] [--binding-concurrency 16] [--photos DIR]

Without --url it starts ``provenance serve`` itself on a free loopback port over a temp data dir (embedded default),
registers a publisher, ingests --register photos through the API and waits for them. Then, per phase, it sends a
fixed number of requests with at most --concurrency in flight (httpx async) and prints requests/s, p50/p90/p99
latency and the status codes seen:

* ``lookup``: POST /v1/lookup with re-shared copies (resized JPEG) of registered photos and unrelated photos;
* ``byBinding``: GET /matches/byBinding with the pHash of a registered photo (index search only).

Targets are loopback only, every loop is bounded in count, and --max-seconds caps each phase's wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _loopback_only(url: str) -> str:
    host = urlparse(url).hostname or ""
    if not (host == "localhost" or host.startswith("127.") or host == "::1"):
        raise SystemExit(f"refusing to load-test {url}: only loopback targets are allowed")
    return url.rstrip("/")


def _reshared(data: bytes) -> bytes:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    img = img.resize((img.width * 3 // 4, img.height * 3 // 4), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=80)
    return out.getvalue()


def start_server(data_dir: Path) -> tuple[str, subprocess.Popen[bytes], str]:
    from provenance.api.keys import create_api_key
    from provenance.config import Settings
    from provenance.services import open_ledger

    ledger = open_ledger(Settings(data_dir=data_dir))
    ledger.add_publisher("bench")
    key = create_api_key(ledger.engine, "bench")
    ledger.close()
    port = _free_port()
    env = {**os.environ, "PROVENANCE_DATA_DIR": str(data_dir), "PROVENANCE_API_LOOKUP_BURST": "100000",
           "PROVENANCE_API_LOOKUP_RATE_PER_S": "100000", "PROVENANCE_LOG_LEVEL": "WARNING"}
    log = (data_dir / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "provenance.cli", "serve", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}; see {data_dir / 'server.log'}")
        try:
            if httpx.get(url + "/openapi.json", timeout=2).status_code == 200:
                return url, proc, key
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("server did not start within 120 s")


def register(url: str, key: str, photos: list[Path]) -> list[str]:
    cids = []
    with httpx.Client(base_url=url, timeout=120) as client:
        urls = []
        for p in photos:
            r = client.post("/v1/assets", headers={"Authorization": f"Bearer {key}"},
                            files={"file": (p.name, p.read_bytes())}, data={"metadata": f'{{"title": "{p.stem}"}}'})
            r.raise_for_status()
            urls.append(r.json()["status_url"])
        for status_url in urls:
            for _ in range(1200):  # bounded: at most ~10 minutes per image
                task = client.get(status_url).json()
                if task["state"] in ("succeeded", "failed"):
                    break
                time.sleep(0.5)
            if task["state"] != "succeeded":
                raise SystemExit(f"ingest failed: {task}")
            cids.append(task["record_cid"])
    return cids


async def run_phase(name: str, url: str, n: int, concurrency: int,  # type: ignore[no-untyped-def]
                    make_request, max_seconds: float) -> None:
    latencies: list[float] = []
    codes: Counter[int | str] = Counter()
    sem = asyncio.Semaphore(concurrency)
    stop_at = time.monotonic() + max_seconds

    async def one(client: httpx.AsyncClient, i: int) -> None:
        async with sem:
            if time.monotonic() > stop_at:
                codes["skipped"] += 1
                return
            t = time.perf_counter()
            try:
                resp = await make_request(client, i)
                codes[resp.status_code] += 1
            except httpx.HTTPError as exc:
                codes[type(exc).__name__] += 1
            latencies.append(time.perf_counter() - t)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(one(client, i) for i in range(n)))
        wall = time.perf_counter() - t0
    ms = sorted(x * 1000 for x in latencies)

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, int(round(p / 100 * (len(ms) - 1))))]

    done = len(latencies)
    print(f"{name:<10} {done} requests, concurrency {concurrency}: {done / wall:7.1f} req/s   "
          f"p50 {statistics.median(ms):7.1f} ms   p90 {pct(90):7.1f} ms   p99 {pct(99):7.1f} ms   "
          f"max {ms[-1]:7.1f} ms   codes {dict(codes)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="A running server (loopback only). Default: start one.")
    ap.add_argument("--key", help="Publisher API key for --url (to register photos); omit to skip registering.")
    ap.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "photos" / "kodak24")
    ap.add_argument("--register", type=int, default=8, help="Photos to register first.")
    ap.add_argument("--lookups", type=int, default=60)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--bindings", type=int, default=2000)
    ap.add_argument("--binding-concurrency", type=int, default=16)
    ap.add_argument("--max-seconds", type=float, default=300, help="Wall-time cap per phase.")
    args = ap.parse_args()
    for name in ("lookups", "bindings", "concurrency", "binding_concurrency"):
        if not 1 <= getattr(args, name) <= 20_000:
            raise SystemExit(f"--{name.replace('_', '-')} must be in 1..20000")

    photos = sorted(args.photos.glob("*.png"))
    if len(photos) < args.register + 2:
        raise SystemExit(f"need at least {args.register + 2} photos in {args.photos}")
    known, unrelated = photos[: args.register], photos[args.register:]
    proc = None
    tmp = tempfile.TemporaryDirectory(prefix="bench-api-")
    try:
        if args.url:
            url, key = _loopback_only(args.url), args.key
        else:
            url, proc, key = start_server(Path(tmp.name) / "data")
        t = time.perf_counter()
        cids = register(url, key, known) if key else []
        if cids:
            print(f"registered {len(cids)} photos through the API in {time.perf_counter() - t:.1f} s")

        queries = [_reshared(p.read_bytes()) for p in known] + [_reshared(p.read_bytes()) for p in unrelated[:4]]

        async def lookup(client: httpx.AsyncClient, i: int) -> httpx.Response:
            data = queries[i % len(queries)]
            return await client.post("/v1/lookup", files={"file": ("q.jpg", data, "image/jpeg")})

        asyncio.run(run_phase("lookup", url, args.lookups, args.concurrency, lookup, args.max_seconds))

        if cids:
            with httpx.Client(base_url=url, timeout=60) as client:
                rec = client.get(f"/v1/records/{cids[0]}").json()
            phash = next(h["value"] for h in rec["hashes"] if h["alg"] == "phash")
            value = base64.b64encode(bytes.fromhex(phash)).decode()

            async def by_binding(client: httpx.AsyncClient, i: int) -> httpx.Response:
                return await client.get("/matches/byBinding", params={"alg": "phash", "value": value})

            asyncio.run(run_phase("byBinding", url, args.bindings, args.binding_concurrency, by_binding,
                                  args.max_seconds))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        tmp.cleanup()


if __name__ == "__main__":
    main()
