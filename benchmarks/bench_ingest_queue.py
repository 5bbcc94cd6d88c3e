"""End-to-end ingest throughput through the real queue: Redis + 1-2 real Celery workers, N photos.

Usage: python benchmarks/bench_ingest_queue.py [--n 24] [--workers 1] [--pool solo] [--redis redis://127.0.0.1:6379]
                                                [--no-baseline]

Each worker is ``celery -A workers.app worker`` in its own process (consuming ``ingest`` and ``hash``), on an empty
Redis database this run claims and flushes, with a temp data dir (SQLite + local block store + in-process EVM).
Workers are warmed up first (OSCAR-Net loads in each). Then N photos from ../shared/data/photos are submitted with
``CeleryQueue.submit_many`` and the clock stops when the last one has its record. Printed: images/s, the latency of
submit (step 0: check + block store put + send), of each image end to end, and of each step as its worker ran it
(from the worker logs), and, unless --no-baseline, the same photos through ``InProcessQueue`` (one thread).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "photos"
CLAIM_KEY = "provenance-bench:claim"
_CELERY = "import sys; from celery.__main__ import main; sys.argv[0] = 'celery'; main()"
_TASK_DONE = re.compile(r"Task provenance\.(ingest\.\w+|anchor_checkpoint)\[[^\]]+\] succeeded in ([0-9.]+)s")


def claim_db(base: str) -> str:
    import redis

    token = uuid.uuid4().hex
    for number in range(15, 0, -1):
        client = redis.Redis.from_url(f"{base}/{number}")
        if client.set(CLAIM_KEY, token, nx=True, ex=3600):
            if client.dbsize() == 1:
                return f"{base}/{number}"
            client.delete(CLAIM_KEY)
    raise SystemExit(f"no empty Redis database on {base}")


def start_worker(env: dict[str, str], log: Path, pool: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-c", _CELERY, "-A", "workers.app", "worker", "--pool", pool, "--concurrency", "1",
           "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", "ingest,hash", "-l", "INFO",
           "-n", f"bench-{uuid.uuid4().hex[:6]}@%h"]
    with log.open("ab") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while " ready." not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker did not start:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.2)
    return proc


def fmt(ms: list[float]) -> str:
    return f"median {statistics.median(ms):7.1f} ms   p95 {np.percentile(ms, 95):7.1f} ms   n={len(ms)}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--workers", type=int, default=1, choices=(1, 2))
    ap.add_argument("--pool", default="solo", choices=("solo", "threads", "prefork"))
    ap.add_argument("--redis", default=os.environ.get("PROVENANCE_TEST_REDIS_URL", "redis://127.0.0.1:6379"))
    ap.add_argument("--database-url", help="record store (e.g. PostgreSQL) instead of SQLite in the temp dir")
    ap.add_argument("--ipfs-api", help="IPFS RPC API URL: the block store is the daemon instead of local files")
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()

    import redis

    from provenance.config import Settings
    from provenance.records import PublisherMetadata
    from provenance.services import open_pipeline
    from workers.app import close_pipeline
    from workers.queue import CeleryQueue, InProcessQueue

    photos = sorted(p for p in PHOTOS.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    warm, measured = photos[: 2 * args.workers], photos[2 * args.workers: 2 * args.workers + args.n]
    meta = PublisherMetadata(title="bench")
    db_url = claim_db(args.redis.rstrip("/"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    env_settings = {"PROVENANCE_DATA_DIR": str(tmp / "data"), "PROVENANCE_QUEUE": "celery",
                    "PROVENANCE_BROKER_URL": db_url, "PROVENANCE_RESULT_BACKEND": db_url}
    if args.database_url:
        env_settings["PROVENANCE_DATABASE_URL"] = args.database_url
    if args.ipfs_api:
        env_settings.update({"PROVENANCE_BLOCKSTORE": "ipfs", "PROVENANCE_IPFS_API_URL": args.ipfs_api})
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
    # One torch thread per worker: on a shared 2-core machine, two threads spin against each other (~10x slower).
    env.update(env_settings, OMP_NUM_THREADS="1")
    settings = Settings(**{k[len("PROVENANCE_"):].lower(): v for k, v in env_settings.items()})
    pipeline = open_pipeline(settings)
    pipeline.ledger.add_publisher("bench")
    queue = CeleryQueue(pipeline, settings)
    procs = []
    try:
        logs = [tmp / f"worker-{i}.log" for i in range(args.workers)]
        procs = [start_worker(env, log, args.pool) for log in logs]
        queue.submit_many(warm, publisher="bench", metadata=meta, timeout_s=300)
        offsets = [log.stat().st_size for log in logs]

        submitted: dict[str, float] = {}
        submit_ms: list[float] = []
        finished: dict[str, float] = {}
        original_submit = queue.submit

        def timed_submit(data: bytes, **kw):  # type: ignore[no-untyped-def]
            t = time.perf_counter()
            task_id = original_submit(data, **kw)
            submitted[kw["source"]] = t
            submit_ms.append((time.perf_counter() - t) * 1000)
            return task_id

        queue.submit = timed_submit  # type: ignore[method-assign]
        t0 = time.perf_counter()
        items = queue.submit_many(measured, publisher="bench", metadata=meta, timeout_s=600, poll_s=0.05,
                                  progress=lambda item, d, n: finished.setdefault(item.source, time.perf_counter()))
        wall = time.perf_counter() - t0
        ok = sum(i.ok for i in items)

        steps: dict[str, list[float]] = defaultdict(list)
        for log, off in zip(logs, offsets):
            with log.open("rb") as fh:
                fh.seek(off)
                for m in _TASK_DONE.finditer(fh.read().decode("utf-8", "replace")):
                    steps[m.group(1)].append(float(m.group(2)) * 1000)
        e2e = [(finished[s] - submitted[s]) * 1000 for s in submitted if s in finished]

        print(f"queue: Redis ({db_url}), {args.workers} worker(s), pool {args.pool}, 1 torch thread each, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        print(f"{ok}/{len(measured)} photos ingested in {wall:.1f} s: {ok / wall:.2f} images/s")
        print(f"  submit (check + block store put + send)  {fmt(submit_ms)}")
        print(f"  end to end (submit -> record registered) {fmt(e2e)}")
        for name in ("ingest.read_c2pa", "ingest.hash", "ingest.features", "ingest.append", "ingest.register",
                     "anchor_checkpoint"):
            if steps.get(name):
                print(f"  step {name:<35} {fmt(steps[name])}")
        if not args.no_baseline:
            import torch

            torch.set_num_threads(1)  # as in the workers
            base = open_pipeline(settings.model_copy(update={"data_dir": tmp / "baseline"}))
            base.ledger.add_publisher("bench")
            inproc = InProcessQueue(base, threads=1)
            inproc.submit_many(warm[:1], publisher="bench", metadata=meta)
            t0 = time.perf_counter()
            items = inproc.submit_many(measured, publisher="bench", metadata=meta)
            wall_b = time.perf_counter() - t0
            inproc.close()
            close_pipeline(base)
            print(f"baseline InProcessQueue (1 thread, this process): {sum(i.ok for i in items) / wall_b:.2f} images/s "
                  f"({wall_b:.1f} s)")
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        queue.close()
        close_pipeline(pipeline)
        redis.Redis.from_url(db_url).flushdb()


if __name__ == "__main__":
    main()
