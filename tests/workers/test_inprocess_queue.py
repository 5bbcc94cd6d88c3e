"""``InProcessQueue`` (the embedded default: no broker) and ``open_queue``'s rule."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from provenance.config import Settings
from provenance.errors import ConfigError, InvalidImageError
from provenance.hashing import PHashHasher
from provenance.ingest import IngestPipeline
from provenance.records import PublisherMetadata
from provenance.services import open_pipeline
from workers.app import close_pipeline
from workers.errors import QueueUnavailableError, UnknownTaskError
from workers.queue import CeleryQueue, InProcessQueue, open_queue

META = PublisherMetadata(title="t")


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[IngestPipeline]:
    p = open_pipeline(Settings(data_dir=tmp_path / "data"))
    p.ledger.hashers = (PHashHasher(),)  # the queue is under test, not OSCAR-Net: skip its 3 s load
    p.ledger.add_publisher("acme")
    yield p
    close_pipeline(p)


@pytest.fixture
def queue(pipeline: IngestPipeline) -> Iterator[InProcessQueue]:
    q = InProcessQueue(pipeline, threads=2)
    yield q
    q.close()


def test_open_queue_is_celery_only_when_asked(tmp_path: Path, pipeline: IngestPipeline) -> None:
    q = open_queue(Settings(data_dir=tmp_path), pipeline)
    assert isinstance(q, InProcessQueue)
    q.close()
    q = open_queue(Settings(data_dir=tmp_path, queue="celery", broker_url="redis://127.0.0.1:1/0"), pipeline)
    assert isinstance(q, CeleryQueue)  # nothing is contacted until something is submitted
    q.close()
    with pytest.raises(ConfigError, match="PROVENANCE_BROKER_URL"):
        open_queue(Settings(data_dir=tmp_path, queue="celery", broker_url=" "), pipeline)


def test_ingest_status_and_duplicates(queue: InProcessQueue, pipeline: IngestPipeline, shared_photos: Path) -> None:
    data = (shared_photos / "kodak24" / "kodim01.png").read_bytes()
    a = queue.wait(queue.submit(data, publisher="acme", metadata=META, source="k1"), timeout_s=60)
    b = queue.wait(queue.submit(data, publisher="acme", metadata=META, source="k1 again"), timeout_s=60)
    assert (a.state, a.step, a.duplicate, a.source) == ("succeeded", "ingest", False, "k1")
    assert (b.state, b.record_cid, b.duplicate) == ("succeeded", a.record_cid, True)
    assert pipeline.lookup.is_registered(a.record_cid)  # type: ignore[arg-type]
    with pipeline.ledger.reader.connect() as conn:
        assert pipeline.ledger.store.count(conn) == 1


def test_refusals_and_failures(queue: InProcessQueue, shared_photos: Path) -> None:
    with pytest.raises(InvalidImageError, match=r"^x\.jpg: not an image"):
        queue.submit(b"plain text", publisher="acme", metadata=META, source="x.jpg")
    data = (shared_photos / "kodak24" / "kodim02.png").read_bytes()
    st = queue.wait(queue.submit(data, publisher="nobody", metadata=META), timeout_s=60)
    assert (st.state, st.step) == ("failed", "ingest")
    assert st.error == "ingest: publisher 'nobody' is not registered (provenance publishers add)"
    with pytest.raises(UnknownTaskError):
        queue.status("nope")


def test_submit_many_reports_each_input_once(queue: InProcessQueue, shared_photos: Path, tmp_path: Path) -> None:
    for n in (3, 4):
        (tmp_path / f"k{n}.png").write_bytes((shared_photos / "kodak24" / f"kodim{n:02d}.png").read_bytes())
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    seen: list[tuple[str, int, int]] = []
    items = queue.submit_many([tmp_path, tmp_path / "missing.png"], publisher="acme", metadata=META,
                              progress=lambda item, done, total: seen.append((Path(item.source).name, done, total)))
    assert {Path(i.source).name: (i.ok, i.refused is not None) for i in items} == {
        "bad.png": (False, True), "k3.png": (True, False), "k4.png": (True, False), "missing.png": (False, True)}
    assert sorted(done for _, done, _ in seen) == [1, 2, 3, 4] and {t for _, _, t in seen} == {4}
    missing = next(i for i in items if i.source.endswith("missing.png"))
    assert "cannot read" in (missing.refused or "")


def test_celery_queue_with_its_broker_down_says_where(tmp_path: Path, pipeline: IngestPipeline,
                                                      shared_photos: Path) -> None:
    down = "redis://:secret@127.0.0.1:1/0"
    settings = Settings(data_dir=tmp_path, queue="celery", broker_url=down, result_backend=down)
    queue = CeleryQueue(pipeline, settings)
    data = (shared_photos / "kodak24" / "kodim05.png").read_bytes()
    with pytest.raises(QueueUnavailableError, match=r"unreachable.*\(at redis://:\*\*@127\.0\.0\.1:1/0\)") as err:
        queue.submit(data, publisher="acme", metadata=META)
    assert "secret" not in str(err.value)
    with pytest.raises(QueueUnavailableError):
        queue.status("any")
    queue.close()


# --- durability: an accepted upload survives the process (issue 16, finding 6) -----------------------------------
def _accepted_before_a_crash(pipeline: IngestPipeline, data: bytes, task_id: str, *, runs: int) -> None:
    """What a server that died had written for an upload it answered 202: the bytes in the block store, the task row
    (``runs`` times started)."""
    from provenance.ingest_tasks_store import IngestTaskStore

    store = IngestTaskStore(pipeline.ledger.engine)
    store.add(task_id, publisher_id="acme", image_cid=pipeline.ledger.blockstore.put(data), source=f"{task_id}.png",
              metadata_obj={"title": "t"})
    for _ in range(runs):
        store.start(task_id, "ingest")


def test_a_restarted_queue_resumes_what_a_dead_one_accepted(pipeline: IngestPipeline, shared_photos: Path) -> None:
    photos = [(shared_photos / "kodak24" / f"kodim{n:02d}.png").read_bytes() for n in (6, 7)]
    _accepted_before_a_crash(pipeline, photos[0], "waiting", runs=0)  # pending when the process died
    _accepted_before_a_crash(pipeline, photos[1], "interrupted", runs=1)  # running when it died
    restarted = InProcessQueue(pipeline)
    assert restarted.status("interrupted").state == "running"  # known from the database before anything runs
    assert restarted.resume() == 2
    for task_id in ("waiting", "interrupted"):
        st = restarted.wait(task_id, timeout_s=60)
        assert (st.state, st.duplicate) == ("succeeded", False), st
    restarted.close()
    later = InProcessQueue(pipeline)  # yet another process: the ids still answer, from the database
    assert later.resume() == 0
    cids = {later.status(t).record_cid for t in ("waiting", "interrupted")}
    with pipeline.ledger.reader.connect() as conn:
        assert {r.cid for r in pipeline.ledger.store.iter_records(conn)} == cids and len(cids) == 2
    later.close()


def test_a_task_that_keeps_killing_the_process_is_given_up(pipeline: IngestPipeline, shared_photos: Path) -> None:
    from workers.queue import MAX_ATTEMPTS

    _accepted_before_a_crash(pipeline, (shared_photos / "kodak24" / "kodim08.png").read_bytes(), "deadly",
                             runs=MAX_ATTEMPTS)
    queue = InProcessQueue(pipeline)
    assert queue.resume() == 0
    st = queue.status("deadly")
    assert st.state == "failed" and f"interrupted {MAX_ATTEMPTS} times" in (st.error or "")
    queue.close()
    assert InProcessQueue(pipeline).status("deadly").state == "failed"  # persisted, not tried again


def test_submit_persists_the_task_and_old_finished_ones_expire(pipeline: IngestPipeline,
                                                               shared_photos: Path) -> None:
    from provenance.ingest_tasks_store import IngestTaskStore

    queue = InProcessQueue(pipeline, task_retention_s=3600)
    task_id = queue.submit((shared_photos / "kodak24" / "kodim09.png").read_bytes(), publisher="acme",
                           metadata=META, source="k9")
    store = IngestTaskStore(pipeline.ledger.engine)
    row = store.get(task_id)
    assert row is not None and row.publisher_id == "acme" and row.metadata == {"title": "t"}
    assert pipeline.ledger.blockstore.has(row.image_cid)  # the bytes are durable before submit returns
    assert queue.wait(task_id, timeout_s=60).state == "succeeded"
    queue.close()
    assert store.get(task_id).state == "succeeded"  # type: ignore[union-attr]
    from datetime import datetime, timedelta, timezone

    assert store.prune(datetime.now(timezone.utc) - timedelta(hours=1)) == 0  # within the retention: kept
    assert store.prune(datetime.now(timezone.utc) + timedelta(seconds=1)) == 1
    with pytest.raises(UnknownTaskError):
        InProcessQueue(pipeline).status(task_id)


def test_the_task_store_on_sqlite_and_postgresql(sql_engine) -> None:  # type: ignore[no-untyped-def]
    from provenance.ingest_tasks_store import IngestTaskStore

    store = IngestTaskStore(sql_engine)
    store.add("t1", publisher_id="acme", image_cid="bafkreiabc", source="a.png", metadata_obj={"title": "é"})
    store.add("t2", publisher_id="acme", image_cid="bafkreidef", source="b.png", metadata_obj={})
    assert store.start("t1", "ingest") == 1 and store.start("t1", "ingest") == 2
    assert store.counts() == {"pending": 1, "running": 1}
    assert [t.id for t in store.unfinished()] == ["t1", "t2"]
    store.finish("t1", state="succeeded", step="ingest", record_cid="bafkreirec", duplicate=True,
                 details={"earlier_record_cid": "bafkreiold", "earlier_match": "sha256"})
    t1 = store.get("t1")
    assert t1 is not None and (t1.state, t1.record_cid, t1.duplicate, t1.attempts) == ("succeeded", "bafkreirec",
                                                                                         True, 2)
    assert t1.details == {"earlier_record_cid": "bafkreiold", "earlier_match": "sha256"} and t1.metadata == {
        "title": "é"}
    assert [t.id for t in store.unfinished()] == ["t2"] and store.get("nope") is None


def test_celery_queue_depth_counts_the_messages_waiting_in_redis(claim_redis_db, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                 pipeline: IngestPipeline, shared_photos: Path) -> None:
    db = claim_redis_db()
    queue = CeleryQueue(pipeline, Settings(data_dir=tmp_path, queue="celery", broker_url=db.url,
                                           result_backend=db.url))
    assert queue.depth() == {"pending": 0, "running": 0}
    for n in (10, 11):  # no worker consumes them: each chain waits at its first step
        queue.submit((shared_photos / "kodak24" / f"kodim{n:02d}.png").read_bytes(), publisher="acme", metadata=META)
    assert queue.depth() == {"pending": 2, "running": 0}
    queue.close()
