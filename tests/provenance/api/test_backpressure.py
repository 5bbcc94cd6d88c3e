"""Every queue and cache is bounded, and backpressure answers at once with 429 or 503 and Retry-After (issue 16,
section 3): uploads waiting per publisher (in-process queue, through the API), change maps on disk (files and bytes).
The in-process queue's overall backlog: test_hardening.py::test_a_full_ingest_queue_answers_503_at_once; the Celery
queue's per-publisher count across replicas: test_shared_limits.py."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image

from provenance.api.app import create_app
from provenance.api.change_maps import ChangeMapStore
from provenance.config import Settings
from tests.provenance.api.conftest import assert_error, bearer
from tests.provenance.api.fakes import FakeService, textured_image


def test_uploads_waiting_per_publisher_are_bounded_with_429(tmp_path: Path, fake_service: FakeService,
                                                            keys: dict[str, str]) -> None:
    from provenance.ingest import IngestPipeline
    from workers.queue import InProcessQueue

    gate = threading.Event()

    class SlowPipeline(IngestPipeline):  # ingest waits until the test lets it go
        def ingest_report(self, *args: Any, **kwargs: Any) -> Any:
            assert gate.wait(30), "gate never opened"
            return super().ingest_report(*args, **kwargs)

    pipeline = SlowPipeline(fake_service.ledger, fake_service.lookup)
    queue = InProcessQueue(pipeline, threads=1, max_pending=64, block_when_full=False, max_pending_per_publisher=2)
    fake_service.pipeline, fake_service.queue = pipeline, queue  # type: ignore[assignment]
    app = create_app(lambda: fake_service, settings=Settings(data_dir=tmp_path / "data"), anchor=False)
    try:
        with TestClient(app) as client:
            def upload(publisher: str, seed: int) -> Any:
                return client.post("/v1/assets", headers=bearer(keys[publisher]),
                                   files={"file": ("p.png", textured_image(seed), "image/png")})

            accepted = [upload("acme", seed) for seed in (1, 2)]
            assert [r.status_code for r in accepted] == [202, 202]
            started = time.monotonic()
            refused = upload("acme", 3)
            assert time.monotonic() - started < 2  # at once
            err = assert_error(refused, 429, "too_many_pending")
            assert "'acme' already has 2 uploads waiting" in err["message"]
            assert int(refused.headers["Retry-After"]) >= 1
            assert upload("globex", 4).status_code == 202  # one publisher's backlog does not hold up another
            assert "429" in client.get("/openapi.json").json()["paths"]["/v1/assets"]["post"]["responses"]
            gate.set()
            for resp in accepted:
                deadline = time.monotonic() + 20
                while client.get(resp.headers["Location"]).json()["state"] not in ("succeeded", "failed"):
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            deadline = time.monotonic() + 10
            while upload("acme", 5).status_code != 202:  # its uploads finished: places are free again
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        gate.set()
        queue.close()


def _map(path: Path, size: int = 16) -> Path:
    Image.new("RGB", (size, size), (255, 0, 0)).save(path)
    return path


def test_change_maps_on_disk_are_bounded_by_files_and_bytes(tmp_path: Path) -> None:
    store = ChangeMapStore(tmp_path / "served", ttl_s=3600, max_files=3, max_bytes=10_000_000)
    names = []
    for i in range(5):
        with store.workdir() as work:
            names.append(store.publish(_map(work / "map.png")))
            os.utime(store.root / names[-1], (time.time() - 100 + i,) * 2)  # distinct ages, oldest first
    on_disk = sorted(p.name for p in store.root.glob("*.png"))
    assert on_disk == sorted(names[2:])  # the newest 3: the two oldest went first
    assert store.path_for(names[0]) is None and store.path_for(names[4]) is not None

    one = (store.root / names[4]).stat().st_size
    store.max_files, store.max_bytes = 100, 2 * one
    with store.workdir() as work:
        newest = store.publish(_map(work / "map.png"))
    assert newest is not None
    left = list(store.root.glob("*.png"))
    assert sum(p.stat().st_size for p in left) <= 2 * one and (store.root / newest).exists()


def test_work_directories_left_by_a_killed_lookup_expire(tmp_path: Path) -> None:
    store = ChangeMapStore(tmp_path / "served", ttl_s=60, max_files=10)
    stale = store.root / ".work-killed"
    stale.mkdir(parents=True)
    _map(stale / "map.png")
    os.utime(stale, (time.time() - 120, time.time() - 120))
    with store.workdir() as work:
        store.publish(_map(work / "map.png"))
    assert not stale.exists()


def test_the_app_bounds_change_maps_from_the_settings(tmp_path: Path, fake_service: FakeService) -> None:
    settings = Settings(data_dir=tmp_path / "data", api_change_map_max_files=7, api_change_map_max_bytes=12345)
    app = create_app(lambda: fake_service, settings=settings, anchor=False)
    store = app.state.api.change_maps
    assert (store.max_files, store.max_bytes) == (7, 12345)
