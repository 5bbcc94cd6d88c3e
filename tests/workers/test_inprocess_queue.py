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
