"""Two real ``provenance serve`` processes (one data directory) behind one client, sharing their limits through one
real Redis database (``PROVENANCE_RATE_LIMIT_REDIS_URL``): the lookup burst and the image-route burst are one budget
over both replicas, and a heavy request running on one replica holds the client's work slot on the other."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.fixtures.services import ROOT, free_port
from tests.workers.conftest import RedisDb, claim_redis_db  # noqa: F401 (fixture import)

LOOKUP_BURST = 5
IMAGE_BURST = 3
CLIENT = "127.0.0.1"
UNKNOWN_CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"  # well formed, never registered


@dataclass
class Replica:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def _start(data_dir: Path, redis_url: str, name: str) -> Replica:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
    env.update({"PROVENANCE_DATA_DIR": str(data_dir), "PROVENANCE_ANCHOR_EVERY_S": "3600",
                "PROVENANCE_RATE_LIMIT_REDIS_URL": redis_url,
                "PROVENANCE_API_LOOKUP_BURST": str(LOOKUP_BURST), "PROVENANCE_API_LOOKUP_RATE_PER_S": "0.001",
                "PROVENANCE_API_IMAGE_BURST": str(IMAGE_BURST), "PROVENANCE_API_IMAGE_RATE_PER_S": "0.001",
                "PROVENANCE_API_HEAVY_PER_CLIENT": "1", "PROVENANCE_API_HEAVY_CONCURRENCY": "2",
                "PROVENANCE_LOG_LEVEL": "WARNING"})
    log_path = data_dir.parent / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "provenance.cli", "serve", "--host", "127.0.0.1", "--port",
                                 str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    replica = Replica(f"http://127.0.0.1:{port}", proc, log_path)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{name} exited with {proc.returncode}:\n{replica.log()}")
        try:
            if httpx.get(replica.url + "/healthz", timeout=2).status_code == 200:
                return replica
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{name} did not answer within 120 s:\n{replica.log()}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def replicas(claim_redis_db,  # noqa: F811
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Replica, Replica, RedisDb]]:
    from provenance.config import Settings
    from provenance.services import open_ledger

    db = claim_redis_db()
    data_dir = tmp_path_factory.mktemp("replicas") / "data"
    open_ledger(Settings(data_dir=data_dir)).close()  # the schema exists before two processes open it
    started: list[Replica] = []
    try:
        for name in ("replica-a", "replica-b"):
            started.append(_start(data_dir, db.url, name))
        yield started[0], started[1], db
    finally:
        for r in started:
            r.process.terminate()
        for r in started:
            try:
                r.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                r.process.kill()
                r.process.wait()


def test_the_lookup_burst_is_one_budget_over_both_replicas(replicas: tuple[Replica, Replica, RedisDb]) -> None:
    a, b, _ = replicas
    statuses = []
    for i in range(LOOKUP_BURST + 4):  # alternately, as a load balancer would spread them
        resp = httpx.get((a if i % 2 == 0 else b).url + "/matches/byBinding",
                         params={"alg": "phash", "value": "AAAAAAAAAAA="}, timeout=30)
        statuses.append(resp.status_code)
        if resp.status_code == 429:
            assert resp.json()["error"]["code"] == "rate_limited" and int(resp.headers["Retry-After"]) >= 1
    assert statuses[:LOOKUP_BURST].count(429) == 0, statuses
    assert statuses[LOOKUP_BURST:] == [429] * 4, statuses  # 5 in total, then 429 from either replica


def test_the_image_route_burst_is_shared_too(replicas: tuple[Replica, Replica, RedisDb]) -> None:
    a, b, _ = replicas
    statuses = [httpx.get(r.url + f"/v1/records/{UNKNOWN_CID}/image", timeout=30).status_code
                for r in (b, a, b, a, b)]
    assert statuses == [404] * IMAGE_BURST + [429, 429], statuses


def _noise_png(side: int) -> bytes:
    rng = np.random.default_rng(3)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(out, "PNG", compress_level=1)
    return out.getvalue()


def test_a_heavy_request_on_one_replica_holds_the_clients_slot_on_the_other(
        replicas: tuple[Replica, Replica, RedisDb]) -> None:
    a, b, db = replicas
    slots_key = f"provenance:limits:slots:{CLIENT}"
    redis = db.client()
    query = _noise_png(1800)
    for _attempt in range(3):  # the slot must be seen held; a lookup that ends before we look is tried again
        db.client().delete(f"provenance:limits:lookup:{CLIENT}")  # a fresh burst: the slot is what is tested
        answers: list[httpx.Response] = []  # noqa: B023 - each attempt's own list, read after its join
        slow = threading.Thread(target=lambda: answers.append(httpx.post(
            a.url + "/v1/lookup", files={"file": ("q.png", query, "image/png")}, timeout=300)))
        slow.start()
        deadline = time.monotonic() + 60
        while redis.zcard(slots_key) == 0 and slow.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        if redis.zcard(slots_key) == 1:
            started = time.monotonic()
            resp = httpx.post(b.url + "/v1/lookup", files={"file": ("q.png", query, "image/png")}, timeout=60)
            answered_in = time.monotonic() - started
            still_held = redis.zcard(slots_key) == 1
            slow.join(300)
            if not still_held:
                continue
            assert resp.status_code == 429, resp.text
            assert resp.json()["error"]["code"] == "too_many_concurrent" and int(resp.headers["Retry-After"]) >= 1
            assert answered_in < 10  # at once, not after A's lookup
            assert answers and answers[0].status_code == 200, answers and answers[0].text
            assert redis.zcard(slots_key) == 0  # released when A finished
            return
        slow.join(300)
    pytest.fail("replica A's lookup never held its work slot long enough to be observed")
