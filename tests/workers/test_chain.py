"""The ingest chain through a real Redis broker and one real worker process (shared by this module's tests).

The worker anchors once 3 records are waiting (``PROVENANCE_ANCHOR_EVERY_RECORDS=3``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from provenance.errors import InvalidImageError
from provenance.ingest import IngestPipeline
from provenance.records import PublisherMetadata
from provenance.services import open_pipeline
from tests.fixtures.services import free_port
from tests.workers.conftest import ClaimDb, Stack, new_stack, wait_for
from workers.app import close_pipeline
from workers.errors import UnknownTaskError
from workers.jobs import IngestJob, ingest_chain
from workers.queue import CeleryQueue, open_queue
from workers.status import TaskStatus, save_status

TIMEOUT_S = 60
META = PublisherMetadata(title="Harbour", licence="CC-BY-4.0")


@pytest.fixture(scope="module")
def stack(claim_redis_db: ClaimDb, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from tests.workers.conftest import release

    s = new_stack(claim_redis_db, tmp_path_factory, PROVENANCE_ANCHOR_EVERY_RECORDS="3",
                  PROVENANCE_WORKER_METRICS_PORT=str(free_port()))
    pipeline = open_pipeline(s.settings)
    pipeline.ledger.add_publisher("acme")
    pipeline.ledger.add_publisher("globex")
    close_pipeline(pipeline)
    s.worker().start()
    yield s
    s.close()
    release(s.redis)


@pytest.fixture
def pipeline(stack: Stack) -> Iterator[IngestPipeline]:
    p = open_pipeline(stack.settings)
    yield p
    close_pipeline(p)


@pytest.fixture
def queue(stack: Stack, pipeline: IngestPipeline) -> Iterator[CeleryQueue]:
    q = open_queue(stack.settings, pipeline)
    assert isinstance(q, CeleryQueue)
    yield q
    q.close()


def photo(shared_photos: Path, n: int) -> bytes:
    return (shared_photos / "kodak24" / f"kodim{n:02d}.png").read_bytes()


def records_for(pipeline: IngestPipeline, data: bytes) -> list[str]:
    from sqlalchemy import select

    from provenance.records_store import records

    sha = hashlib.sha256(data).hexdigest()
    with pipeline.ledger.reader.connect() as conn:
        return [r.cid for r in conn.execute(select(records.c.cid).where(records.c.image_sha256 == sha))]


def test_a_chain_ingests_an_image_into_ledger_and_index(stack: Stack, queue: CeleryQueue, shared_photos: Path) -> None:
    data = photo(shared_photos, 1)
    task_id = queue.submit(data, publisher="acme", metadata=META, source="kodim01.png")
    assert queue.status(task_id).state in ("pending", "running")

    st = queue.wait(task_id, timeout_s=TIMEOUT_S)
    assert st == TaskStatus(task_id, "succeeded", "register", st.record_cid, False, None, 0, "kodim01.png")

    fresh = open_pipeline(stack.settings)  # another process's view: the ledger and the index catalog on disk
    try:
        assert records_for(fresh, data) == [st.record_cid]
        signed = fresh.lookup.record(st.record_cid)
        assert signed is not None and signed.record.metadata == META and signed.record.publisher_id == "acme"
        assert {h.alg for h in signed.record.hashes} == {"oscar-net", "phash", "global-id"}
        assert fresh.lookup.is_registered(st.record_cid)
        for h in signed.record.hashes:
            assert (st.record_cid, 0) in [(m.record_cid, m.distance) for m in fresh.lookup.search(h.alg, h.value)]
    finally:
        close_pipeline(fresh)


def test_the_same_bytes_twice_give_one_record(queue: CeleryQueue, pipeline: IngestPipeline,
                                              shared_photos: Path) -> None:
    data = photo(shared_photos, 2)
    first, second = (queue.submit(data, publisher="acme", metadata=META, source=f"copy{i}") for i in (1, 2))
    a, b = (queue.wait(t, timeout_s=TIMEOUT_S) for t in (first, second))
    third = queue.wait(queue.submit(data, publisher="acme", metadata=META, source="again"), timeout_s=TIMEOUT_S)

    assert a.state == b.state == third.state == "succeeded"
    assert a.record_cid == b.record_cid == third.record_cid
    assert [a.duplicate, b.duplicate, third.duplicate].count(False) == 1
    assert third.duplicate and third.step == "read_c2pa"  # found at the first step: nothing recomputed
    assert records_for(pipeline, data) == [a.record_cid]


def test_a_bad_image_is_refused_at_submit_and_nothing_is_written(queue: CeleryQueue, pipeline: IngestPipeline,
                                                                  shared_photos: Path) -> None:
    truncated = photo(shared_photos, 3)[:5000]
    with pytest.raises(InvalidImageError, match=r"^cut\.png: corrupt or truncated image"):
        queue.submit(truncated, publisher="acme", metadata=META, source="cut.png")
    with pytest.raises(InvalidImageError, match="not an image"):
        queue.submit(b"GIF89a but not really", publisher="acme", metadata=META, source="fake.gif")
    from provenance.cid import cid_for_bytes

    assert not pipeline.ledger.blockstore.has(cid_for_bytes(truncated))


def test_a_bad_image_queued_directly_fails_the_chain_with_a_clear_error(queue: CeleryQueue,
                                                                          pipeline: IngestPipeline) -> None:
    # A client that skips submit's check (puts the bytes and sends the chain itself) gets the same refusal.
    cid = pipeline.ledger.blockstore.put(b"\x89PNG\r\n\x1a\n not a png at all")
    job = IngestJob(id="direct-bad-image", image_cid=cid, publisher="acme", metadata={}, source="bad.png")
    save_status(queue.app.backend, TaskStatus(job.id, "pending", source="bad.png"))
    ingest_chain(queue.app, job).apply_async()

    st = queue.wait(job.id, timeout_s=TIMEOUT_S)
    assert (st.state, st.step, st.retries) == ("failed", "read_c2pa", 0)
    assert st.error is not None and st.error.startswith("read_c2pa: bad.png: ")
    assert "not an image" in st.error or "corrupt" in st.error


def test_a_permanent_error_fails_the_chain_without_retries(queue: CeleryQueue, pipeline: IngestPipeline,
                                                           shared_photos: Path) -> None:
    data = photo(shared_photos, 4)
    st = queue.wait(queue.submit(data, publisher="nobody", metadata=META, source="k4"), timeout_s=TIMEOUT_S)
    assert (st.state, st.step, st.retries, st.record_cid) == ("failed", "append", 0, None)
    assert st.error == "append: publisher 'nobody' is not registered (provenance publishers add)"
    assert records_for(pipeline, data) == []


def test_unknown_task_id(queue: CeleryQueue) -> None:
    with pytest.raises(UnknownTaskError, match="no ingest task 'nope'"):
        queue.status("nope")


def test_records_past_the_threshold_trigger_an_anchor(queue: CeleryQueue, pipeline: IngestPipeline,
                                                      shared_photos: Path) -> None:
    ledger = pipeline.ledger
    with ledger.reader.connect() as conn:
        size_before = ledger.log.size(conn)
    items = queue.submit_many([shared_photos / "kodak24" / f"kodim{n:02d}.png" for n in (5, 6, 7)], publisher="acme",
                              metadata=META, timeout_s=TIMEOUT_S)
    assert [i.status.state for i in items if i.status] == ["succeeded"] * 3

    def anchored_checkpoint():  # type: ignore[no-untyped-def]
        with ledger.reader.connect() as conn:
            cp = ledger.store.latest_checkpoint(conn, ledger.config.log_id)
        return cp if cp is not None and cp.anchor is not None and cp.tree_size > size_before else None

    # 3 new records make at least 3 waiting since the last checkpoint, whatever the earlier tests left.
    cp = wait_for(anchored_checkpoint, timeout_s=TIMEOUT_S, what="an anchored checkpoint")
    assert cp.anchor.tx_hash.startswith("0x")  # type: ignore[union-attr]


def test_submit_many_reports_progress_and_refusals(queue: CeleryQueue, shared_photos: Path, tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (tmp_path / "k1.png").write_bytes(photo(shared_photos, 1))  # ingested by the first test: a duplicate
    seen: list[tuple[str, int, int]] = []
    items = queue.submit_many([tmp_path], publisher="acme", metadata=META, timeout_s=TIMEOUT_S,
                              progress=lambda item, done, total: seen.append((Path(item.source).name, done, total)))
    by_name = {Path(i.source).name: i for i in items}
    assert by_name["broken.jpg"].refused is not None and by_name["broken.jpg"].status is None
    assert by_name["k1.png"].ok and by_name["k1.png"].status.duplicate  # type: ignore[union-attr]
    assert sorted(seen) == [("broken.jpg", 1, 2), ("k1.png", 2, 2)]


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    resp = httpx.get(url, timeout=10)
    assert resp.status_code == 200
    return {(m.name, tuple(sorted(m.labels.items()))): m.value
            for family in text_string_to_metric_families(resp.text) for m in family.samples}


def test_the_worker_exports_metrics_and_flags_an_earlier_registration(stack: Stack, queue: CeleryQueue,
                                                                      shared_photos: Path) -> None:
    url = f"http://127.0.0.1:{stack.env['PROVENANCE_WORKER_METRICS_PORT']}/metrics"
    before = _scrape(url)
    data = photo(shared_photos, 12)
    first = queue.wait(queue.submit(data, publisher="acme", metadata=META, source="k12"), timeout_s=TIMEOUT_S)
    assert first.state == "succeeded" and first.earlier_record_cid is None
    second = queue.wait(queue.submit(data, publisher="globex", metadata=META, source="k12 again"),
                        timeout_s=TIMEOUT_S)
    assert second.state == "succeeded" and second.record_cid != first.record_cid
    assert (second.earlier_record_cid, second.earlier_publisher, second.earlier_match) == (
        first.record_cid, "acme", "sha256")
    after = _scrape(url)

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert moved("provenance_ingests_total", outcome="appended") == 2
    assert moved("provenance_ingest_duration_seconds_count", outcome="appended") == 2
    assert moved("provenance_ingest_earlier_registrations_total", match="sha256") == 1
    for step in ("read_c2pa", "hash", "features", "append", "register"):
        assert moved("provenance_ingest_step_duration_seconds_count", step=step, outcome="ok") == 2, step
