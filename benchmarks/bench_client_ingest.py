"""Ingest throughput through a real ``provenance serve``: publisher-held keys (``provenance client``: statement
signed on the client, verified and staged by the server before queueing) vs a custodial publisher (plain upload,
the server signs), the same photos, the same server.

Usage: python benchmarks/bench_client_ingest.py [--n 16] [--database-url postgresql+psycopg://...]
                                                [--ipfs-api http://127.0.0.1:5001] [--rounds 2]

Each round uploads N photos from ../shared/data/photos (re-encoded with a round-specific comment so every upload is
new bytes) as each publisher, all at once, and stops the clock when the last task has its record. Printed: images/s
per mode and round, the client-side cost of one statement (sha256 + CID + sign, median over every photo), and the
submit latency (HTTP 202) per mode.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PHOTOS = ROOT.parent / "shared" / "data" / "photos"


def photos(n: int, tag: str) -> list[bytes]:
    files = sorted(p for p in PHOTOS.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:n]
    out = []
    for path in files:
        img = Image.open(path).convert("RGB")
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=92, comment=f"{tag}:{path.name}".encode())
        out.append(buf.getvalue())
    return out


def cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "provenance.cli", *args], env=env, cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return out.stdout


def api_key(stdout: str) -> str:
    return next(line.strip() for line in stdout.splitlines() if line.startswith("  "))


def wait_all(client: httpx.Client, task_ids: list[str]) -> None:
    pending = set(task_ids)
    while pending:
        for tid in list(pending):
            state = client.get(f"/v1/tasks/{tid}").json()["state"]
            if state == "failed":
                raise SystemExit(f"task {tid} failed: {client.get(f'/v1/tasks/{tid}').json()}")
            if state == "succeeded":
                pending.discard(tid)
        time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--ipfs-api", default=None)
    args = ap.parse_args()

    from provenance.client import Submitter, build_statement, generate_key, write_key_pair
    from provenance.metadata import PublisherMetadata

    tmp = Path(tempfile.mkdtemp(prefix="bench-client-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
    env.update(PROVENANCE_DATA_DIR=str(tmp / "data"), PROVENANCE_ANCHOR_EVERY_S="100000",
               PYTHONPATH=str(ROOT), PROVENANCE_LOG_LEVEL="WARNING")
    if args.database_url:
        env["PROVENANCE_DATABASE_URL"] = args.database_url
    if args.ipfs_api:
        env.update(PROVENANCE_BLOCKSTORE="ipfs", PROVENANCE_IPFS_API_URL=args.ipfs_api)
    key = generate_key()
    write_key_pair(tmp / "herald.key", key)
    herald = api_key(cli(env, "publishers", "add", "herald", "--public-key", str(tmp / "herald.key.pub")))
    acme = api_key(cli(env, "publishers", "add", "acme"))
    port = 18000 + os.getpid() % 1000
    server = subprocess.Popen([sys.executable, "-m", "provenance.cli", "serve", "--port", str(port)], env=env,
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        meta = PublisherMetadata(title="bench")
        sign_ms = []
        for data in photos(args.n, "sign"):
            t0 = time.perf_counter()
            build_statement(data, publisher="herald", key=key, metadata=meta)
            sign_ms.append((time.perf_counter() - t0) * 1000)
        # warm-up: the server loads its hashers on the first ingest
        warm = httpx.Client(base_url=url, timeout=300, headers={"Authorization": f"Bearer {acme}"})
        r = warm.post("/v1/assets", files={"file": ("w.jpg", photos(1, "warm")[0])})
        wait_all(warm, [r.json()["task_id"]])
        print(f"statement (sha256 + CID + Ed25519 sign) on the client: median {statistics.median(sign_ms):.2f} ms "
              f"over {len(sign_ms)} photos (max {max(sign_ms):.2f} ms)")
        print(f"set-up: {'PostgreSQL' if args.database_url else 'SQLite'} + "
              f"{'js-ipfs/Kubo RPC' if args.ipfs_api else 'local block store'}, in-process queue, {args.n} photos")
        print("| round | mode | images/s | submit (202) median | submit p95 |")
        print("|---|---|---:|---:|---:|")
        for rnd in range(args.rounds):
            for mode in ("custodial", "client-signed"):
                batch = photos(args.n, f"{mode}-{rnd}")
                lat: list[float] = []
                if mode == "client-signed":
                    sub = Submitter(url, herald, key, timeout_s=300)
                    t0 = time.perf_counter()
                    ids = []
                    for i, data in enumerate(batch):
                        path = tmp / f"{mode}-{rnd}-{i}.jpg"
                        path.write_bytes(data)
                        s0 = time.perf_counter()
                        ids.append(sub.upload(path, meta))
                        lat.append(time.perf_counter() - s0)
                    wait_all(sub.http, ids)
                    sub.close()
                else:
                    t0 = time.perf_counter()
                    ids = []
                    for i, data in enumerate(batch):
                        s0 = time.perf_counter()
                        resp = warm.post("/v1/assets", files={"file": (f"{i}.jpg", data)},
                                         data={"metadata": '{"title": "bench"}'})
                        resp.raise_for_status()
                        ids.append(resp.json()["task_id"])
                        lat.append(time.perf_counter() - s0)
                    wait_all(warm, ids)
                elapsed = time.perf_counter() - t0
                lat.sort()
                print(f"| {rnd + 1} | {mode} | {len(batch) / elapsed:.2f} | {statistics.median(lat) * 1000:.0f} ms "
                      f"| {lat[int(0.95 * (len(lat) - 1))] * 1000:.0f} ms |")
        warm.close()
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
