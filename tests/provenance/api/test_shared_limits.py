"""Limits shared by API replicas, against a real Redis (each test claims an empty database): the token bucket and
the per-client work slots of two "replicas" (two independent instances, as two processes would hold) draw on one
budget; a crashed replica's slots expire; a live one's are renewed; with Redis away each replica falls back to its
own in-memory limits. The per-publisher backlog of the Celery queue is counted across two queues the same way.
Two real ``provenance serve`` processes: tests/integration/test_shared_limits_served.py."""

from __future__ import annotations

from tests.conftest import run_isolated

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provenance.api.errors import ApiError
from provenance.api.shared_limits import SharedLimits, SharedTokenBucket, SharedWorkSlots, open_shared_limits
from provenance.config import Settings
from tests.fixtures.services import free_port
from tests.provenance.api.fakes import FakeService, textured_image
from tests.workers.conftest import CLAIM_KEY, RedisDb, claim_redis_db  # noqa: F401 (fixture import)


@pytest.fixture(scope="module")
def module_db(claim_redis_db) -> RedisDb:  # noqa: F811
    return claim_redis_db()


@pytest.fixture
def redis_db(module_db: RedisDb) -> Iterator[RedisDb]:
    """The module's claimed database, emptied after each test (the claim itself is kept)."""
    yield module_db
    client = module_db.client()
    owner = client.get(CLAIM_KEY)
    client.flushdb()
    if owner is not None:
        client.set(CLAIM_KEY, owner, ex=3600)


def _replicas(db: RedisDb, n: int = 2) -> list[SharedLimits]:
    return [SharedLimits.from_url(db.url) for _ in range(n)]


# --- token buckets ----------------------------------------------------------------------------------------------------
def test_two_replicas_share_one_token_bucket_per_client(redis_db: RedisDb) -> None:
    a, b = (SharedTokenBucket(s, "lookup", rate_per_s=0.01, burst=5) for s in _replicas(redis_db))
    waits = [(a if i % 2 else b).take("203.0.113.7") for i in range(5)]
    assert waits == [0.0] * 5  # the burst, taken alternately from both replicas
    for bucket in (a, b):  # exhausted for both: the next token is 1 / 0.01 s away
        assert 95 < bucket.take("203.0.113.7") <= 100
    assert a.take("198.51.100.1") == 0.0 and b.take("198.51.100.1") == 0.0  # another client has its own bucket
    key = a.shared.key("lookup", "203.0.113.7")
    assert 0 < redis_db.client().pttl(key) <= 501_000  # idle buckets expire once they would be full again


def test_a_shared_bucket_refills_at_its_rate(redis_db: RedisDb) -> None:
    a, b = (SharedTokenBucket(s, "image", rate_per_s=20.0, burst=2) for s in _replicas(redis_db))
    assert a.take("c") == 0.0 and b.take("c") == 0.0
    assert 0 < a.take("c") <= 0.05
    time.sleep(0.12)  # ~2 tokens back (the failed take above cost nothing)
    assert b.take("c") == 0.0 and a.take("c") == 0.0
    assert b.take("c") > 0


def test_a_replica_falls_back_to_in_memory_limits_when_redis_is_down(caplog: pytest.LogCaptureFixture) -> None:
    dead = SharedLimits.from_url(f"redis://127.0.0.1:{free_port()}/0")
    bucket = SharedTokenBucket(dead, "lookup", rate_per_s=0.01, burst=2)
    started = time.monotonic()
    assert [bucket.take("c") for _ in range(2)] == [0.0, 0.0]
    assert bucket.take("c") > 0  # still bounded: this process's own bucket
    assert not dead.available  # not asked again for a few seconds: no connect timeout per request
    assert time.monotonic() - started < 2


def test_the_shared_store_is_chosen_from_the_settings(tmp_path: Path) -> None:
    assert open_shared_limits(Settings(data_dir=tmp_path)) is None  # embedded default: in-memory
    assert open_shared_limits(Settings(data_dir=tmp_path, queue="celery",
                                       rate_limit_redis_url="memory")) is None
    celery = Settings(data_dir=tmp_path, queue="celery", broker_url="redis://127.0.0.1:6379/7")
    assert celery.shared_limits_url == "redis://127.0.0.1:6379/7"  # the broker's Redis
    own = Settings(data_dir=tmp_path, rate_limit_redis_url="redis://:secret@10.0.0.5:6380/2")
    assert own.shared_limits_url == "redis://:secret@10.0.0.5:6380/2"
    shared = open_shared_limits(own)
    assert shared is not None and "secret" not in shared.where
    shared.close()


# --- work slots -------------------------------------------------------------------------------------------------------
def test_two_replicas_share_the_per_client_work_slots(redis_db: RedisDb) -> None:
    a, b = (SharedWorkSlots(s, total=4, per_client=1, wait_s=0) for s in _replicas(redis_db))

    async def scenario() -> None:
        async with a.slot("203.0.113.7", "lookup"):
            with pytest.raises(ApiError) as refused:
                async with b.slot("203.0.113.7", "lookup"):
                    pass
            assert refused.value.status == 429 and refused.value.code == "too_many_concurrent"
            assert int(refused.value.headers["Retry-After"]) >= 1
            async with b.slot("198.51.100.1", "lookup"):  # another client is not held up
                assert a.busy == 1 and b.busy == 1
        async with b.slot("203.0.113.7", "lookup"):  # released on A: free on B
            pass

    run_isolated(scenario())
    assert a.busy == b.busy == 0
    assert redis_db.client().zcard(a.shared.key("slots", "203.0.113.7")) == 0


def test_a_crashed_replicas_slots_expire_and_a_live_ones_are_renewed(redis_db: RedisDb) -> None:
    crashed, live, other = _replicas(redis_db, 3)
    dead = SharedWorkSlots(crashed, total=4, per_client=1, wait_s=0, lease_s=1.0)
    assert dead._acquire(dead.shared.key("slots", "c"), "ticket-of-a-killed-process")  # taken, never released
    probe = SharedWorkSlots(other, total=4, per_client=1, wait_s=0, lease_s=1.0)

    async def refused() -> bool:
        try:
            async with probe.slot("c", "lookup"):
                return False
        except ApiError as exc:
            assert exc.status == 429
            return True

    assert run_isolated(refused())
    time.sleep(1.3)  # past the lease: the killed process's slot is gone
    assert not run_isolated(refused())

    holder = SharedWorkSlots(live, total=4, per_client=1, wait_s=0, lease_s=1.0, renew_every_s=0.2)

    async def hold_for(seconds: float) -> list[bool]:
        seen = []
        async with holder.slot("c", "lookup"):
            for _ in range(int(seconds / 0.5)):
                await asyncio.sleep(0.5)
                seen.append(await refused())
        return seen

    assert run_isolated(hold_for(2.5)) == [True] * 5  # held 2.5 s on a 1 s lease: renewed all along
    assert not run_isolated(refused())


def test_a_full_replica_answers_503_without_holding_the_clients_share(redis_db: RedisDb) -> None:
    a, b = (SharedWorkSlots(s, total=1, per_client=2, wait_s=0.2) for s in _replicas(redis_db))

    async def scenario() -> None:
        async with a.slot("c1", "lookup"):
            with pytest.raises(ApiError) as busy:
                async with a.slot("c2", "lookup"):  # A's one slot is taken: 503 after the wait
                    pass
            assert busy.value.status == 503 and busy.value.code == "busy"
            async with b.slot("c2", "lookup"):  # B has room; c2's refused try on A left nothing behind
                pass

    run_isolated(scenario())
    assert redis_db.client().zcard(a.shared.key("slots", "c2")) == 0


def test_work_slots_fall_back_to_in_memory_when_redis_is_down() -> None:
    slots = SharedWorkSlots(SharedLimits.from_url(f"redis://127.0.0.1:{free_port()}/0"), total=2, per_client=1,
                            wait_s=0)

    async def scenario() -> None:
        async with slots.slot("c", "lookup"):
            with pytest.raises(ApiError) as refused:  # this process's own per-client bound still holds
                async with slots.slot("c", "lookup"):
                    pass
            assert refused.value.status == 429

    run_isolated(scenario())
    assert slots.busy == 0


# --- pending uploads per publisher (Celery) ------------------------------------------------------------------------
def test_pending_uploads_per_publisher_are_counted_across_celery_queues(redis_db: RedisDb, tmp_path: Path) -> None:
    from provenance.ingest import IngestPipeline
    from workers.errors import PublisherBacklogError
    from workers.queue import CeleryQueue
    from workers.status import TaskStatus, save_status

    service = FakeService.open(tmp_path / "data")
    for name in ("acme", "globex"):
        service.ledger.add_publisher(name)
    settings = Settings(data_dir=tmp_path / "data", queue="celery", broker_url=redis_db.url,
                        result_backend=redis_db.url)
    pipeline = IngestPipeline(service.ledger, service.lookup)
    replicas = [CeleryQueue(pipeline, settings, max_pending_per_publisher=2) for _ in range(2)]
    try:
        from provenance.metadata import PublisherMetadata

        def submit(replica: int, seed: int, publisher: str = "acme") -> str:
            return replicas[replica].submit(textured_image(seed), publisher=publisher,
                                            metadata=PublisherMetadata(), source=f"{seed}.png")

        first = [submit(0, 1), submit(1, 2)]  # no worker runs: both stay pending
        for replica in (0, 1):
            with pytest.raises(PublisherBacklogError) as full:
                submit(replica, 3)
            assert full.value.limit == 2 and "already has 2 uploads waiting" in str(full.value)
        assert submit(1, 4, "globex")  # another publisher's uploads are still accepted
        save_status(replicas[0].app.backend, TaskStatus(first[0], "succeeded", "register", "bafy-done"))
        assert submit(0, 5)  # one finished: a place is free again, on either replica
        with pytest.raises(PublisherBacklogError):
            submit(1, 6)
        assert replicas[0].backlog.waiting("acme") == 2
    finally:
        for q in replicas:
            q.close()
        service.close()


def test_the_cli_bulk_ingest_is_not_bounded_per_publisher(tmp_path: Path) -> None:
    from provenance.ingest import IngestPipeline
    from workers.queue import open_queue

    service = FakeService.open(tmp_path / "data")
    settings = Settings(data_dir=tmp_path / "data", ingest_max_pending_per_publisher=1)
    pipeline = IngestPipeline(service.ledger, service.lookup)
    api, cli = open_queue(settings, pipeline, block_when_full=False), open_queue(settings, pipeline)
    try:
        assert api.max_pending_per_publisher == 1 and cli.max_pending_per_publisher is None
    finally:
        api.close()
        cli.close()
        service.close()
