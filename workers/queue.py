"""``IngestQueue``: how the HTTP API and the CLI hand images to ingest, and follow them.

Two implementations, picked by :func:`open_queue` with one rule: **Celery exactly when** ``PROVENANCE_QUEUE=celery``
(broker ``PROVENANCE_BROKER_URL``, status in ``PROVENANCE_RESULT_BACKEND``); otherwise (the default, ``inprocess``)
a thread pool in this process. A broker URL alone never switches: it has a default, and silently depending on
whichever Redis happens to answer would surprise.

* :class:`CeleryQueue` puts the bytes in the block store (step 0) and sends one chain per image carrying the
  image's CID; separate ``provenance worker`` processes run it. Status lives in the result backend, so any process
  can ask about any ingest.
* :class:`InProcessQueue` runs ``IngestPipeline.ingest`` on a thread pool; status is kept in memory, in this process.

Both refuse what can never be ingested (not an image, corrupt, over the limits) in ``submit`` itself, with an
:class:`~provenance.errors.InvalidImageError` naming the source, before anything is written or queued.
"""

from __future__ import annotations

import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from provenance.config import Settings
from provenance.errors import ConfigError, InvalidInputError, ProvenanceError
from provenance.ingest import IngestPipeline
from provenance.ledger import expand_image_paths
from provenance.logging import get_logger
from provenance.records import PublisherMetadata
from workers.errors import QueueUnavailableError, UnknownTaskError
from workers.status import TaskState, TaskStatus

__all__ = ["BulkItem", "CeleryQueue", "InProcessQueue", "IngestQueue", "ProgressCallback", "TaskState",
           "TaskStatus", "open_queue"]

log = get_logger(__name__)


@dataclass(frozen=True)
class BulkItem:
    """One input of :meth:`IngestQueue.submit_many`: refused before queueing (``refused`` says why), or submitted
    (``status`` is its latest status: final unless ``wait`` was off or the wait timed out)."""

    source: str
    status: TaskStatus | None = None
    refused: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and self.status.state == "succeeded"


#: ``progress(item, done, total)``: called once per input, when it is finished (refused, succeeded or failed; with
#: ``wait=False``, when it is submitted), with the count of inputs finished so far and the total.
ProgressCallback = Callable[[BulkItem, int, int], None]


class IngestQueue(ABC):
    def __init__(self, pipeline: IngestPipeline) -> None:
        self.pipeline = pipeline

    @abstractmethod
    def submit(self, data: bytes, *, publisher: str, metadata: PublisherMetadata, source: str = "upload") -> str:
        """Queue one image; returns its task id. Raises ``InvalidImageError`` (nothing queued) for bad images."""

    @abstractmethod
    def status(self, task_id: str) -> TaskStatus:
        """The latest status; ``UnknownTaskError`` for an id never submitted (or expired)."""

    def statuses(self, task_ids: list[str]) -> dict[str, TaskStatus]:
        return {t: self.status(t) for t in task_ids}

    def close(self) -> None:
        """Release what the queue holds (threads, broker connections)."""

    def wait(self, task_id: str, *, timeout_s: float | None = None, poll_s: float = 0.1) -> TaskStatus:
        """Block until the task is finished (or ``timeout_s`` passed: then its latest, unfinished status)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            st = self.status(task_id)
            if st.finished or (deadline is not None and time.monotonic() >= deadline):
                return st
            time.sleep(poll_s)

    def submit_many(self, paths: Iterable[Path], *, publisher: str, metadata: PublisherMetadata,
                    progress: ProgressCallback | None = None, wait: bool = True, timeout_s: float | None = None,
                    poll_s: float = 0.2) -> list[BulkItem]:
        """Bulk ingest: every file (a directory means every image in it, recursively, sorted). A file that cannot
        be read or is refused is reported, not fatal; a broker or block store outage is raised."""
        files = list(expand_image_paths(paths))
        items: list[BulkItem | None] = [None] * len(files)
        pending: dict[str, int] = {}
        done = 0

        def finish(i: int, item: BulkItem) -> None:
            nonlocal done
            items[i] = item
            done += 1
            if progress is not None:
                progress(item, done, len(files))

        def poll() -> None:
            for task_id, st in self.statuses(list(pending)).items():
                if st.finished:
                    i = pending.pop(task_id)
                    finish(i, BulkItem(str(files[i]), st))

        last_poll = time.monotonic()
        for i, path in enumerate(files):
            try:
                task_id = self.submit(path.read_bytes(), publisher=publisher, metadata=metadata, source=str(path))
            except InvalidInputError as exc:
                finish(i, BulkItem(str(path), refused=str(exc)))
                continue
            except OSError as exc:
                finish(i, BulkItem(str(path), refused=f"{path}: cannot read ({exc.strerror or exc})"))
                continue
            if not wait:
                finish(i, BulkItem(str(path), TaskStatus(task_id, "pending", source=str(path))))
                continue
            pending[task_id] = i
            if time.monotonic() - last_poll >= max(poll_s, 1.0):  # report finished ones while still submitting
                poll()
                last_poll = time.monotonic()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while pending and (deadline is None or time.monotonic() < deadline):
            poll()
            if pending:
                time.sleep(poll_s)
        for task_id, i in pending.items():  # timed out: their latest status
            items[i] = BulkItem(str(files[i]), self.status(task_id))
        return [item for item in items if item is not None]


# --- Celery --------------------------------------------------------------------------------------------------------
class CeleryQueue(IngestQueue):
    def __init__(self, pipeline: IngestPipeline, settings: Settings, app=None) -> None:  # type: ignore[no-untyped-def]
        from workers.app import create_app

        super().__init__(pipeline)
        self.settings = settings
        self.app = app if app is not None else create_app(settings)

    @contextmanager
    def _reaching(self, what: str, url: str) -> Iterator[None]:
        import redis
        from celery.exceptions import BackendError
        from kombu.exceptions import OperationalError

        from workers.app import safe_url

        try:
            yield
        except (OperationalError, redis.RedisError, BackendError, ConnectionError) as exc:
            raise QueueUnavailableError(f"{what} unreachable: {exc.__class__.__name__}: {exc}",
                                        where=safe_url(url)) from exc

    def submit(self, data: bytes, *, publisher: str, metadata: PublisherMetadata, source: str = "upload") -> str:
        from workers.jobs import IngestJob, ingest_chain
        from workers.status import save_status

        self.pipeline.check(data, source=source)
        image_cid = self.pipeline.ledger.blockstore.put(data)  # step 0: the chain carries the CID, not the bytes
        job = IngestJob(id=uuid.uuid4().hex, image_cid=image_cid, publisher=publisher, metadata=metadata.to_obj(),
                        source=source)
        with self._reaching("result backend", self.settings.result_backend):
            save_status(self.app.backend, TaskStatus(job.id, "pending", source=source))  # before a worker can start
        with self._reaching("broker", self.settings.broker_url):
            ingest_chain(self.app, job).apply_async()
        return job.id

    def status(self, task_id: str) -> TaskStatus:
        return self.statuses([task_id])[task_id]

    def statuses(self, task_ids: list[str]) -> dict[str, TaskStatus]:
        from workers.status import load_statuses

        with self._reaching("result backend", self.settings.result_backend):
            found = load_statuses(self.app.backend, task_ids)
        missing = [t for t, st in found.items() if st is None]
        if missing:
            raise UnknownTaskError(f"no ingest task {missing[0]!r} (never submitted, or its status expired)")
        return {t: st for t, st in found.items() if st is not None}

    def close(self) -> None:
        self.app.close()


# --- in-process ----------------------------------------------------------------------------------------------------
class InProcessQueue(IngestQueue):
    """``IngestPipeline.ingest`` on a thread pool. ``submit`` blocks while ``max_pending`` images wait (their bytes
    are held in memory until ingested); statuses of the last ``keep_finished`` finished ingests are kept."""

    def __init__(self, pipeline: IngestPipeline, *, threads: int = 1, max_pending: int = 64,
                 keep_finished: int = 100_000) -> None:
        super().__init__(pipeline)
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ingest")
        self._slots = threading.BoundedSemaphore(max_pending)
        self._statuses: OrderedDict[str, TaskStatus] = OrderedDict()
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._keep_finished = keep_finished
        self._lock = threading.Lock()

    def _set(self, st: TaskStatus) -> None:
        with self._lock:
            self._statuses[st.id] = st
            if st.finished:
                self._finished[st.id] = None
                while len(self._finished) > self._keep_finished:
                    old, _ = self._finished.popitem(last=False)
                    self._statuses.pop(old, None)

    def submit(self, data: bytes, *, publisher: str, metadata: PublisherMetadata, source: str = "upload") -> str:
        self.pipeline.check(data, source=source)
        task_id = uuid.uuid4().hex
        self._slots.acquire()
        self._set(TaskStatus(task_id, "pending", source=source))
        try:
            self._executor.submit(self._run, task_id, data, publisher, metadata, source)
        except BaseException:
            self._slots.release()
            raise
        return task_id

    def _run(self, task_id: str, data: bytes, publisher: str, metadata: PublisherMetadata, source: str) -> None:
        try:
            self._set(TaskStatus(task_id, "running", "ingest", source=source))
            result = self.pipeline.ingest(data, publisher=publisher, metadata=metadata, source=source)
        except ProvenanceError as exc:
            self._set(TaskStatus(task_id, "failed", "ingest", error=f"ingest: {exc}", source=source))
        except Exception as exc:  # noqa: BLE001 - a bug must fail this ingest, not kill the pool thread silently
            log.exception("ingest.internal_error", task=task_id, source=source)
            self._set(TaskStatus(task_id, "failed", "ingest", error=f"ingest: internal error "
                                 f"({type(exc).__name__}: {exc})", source=source))
        else:
            self._set(TaskStatus(task_id, "succeeded", "ingest", result.cid, result.duplicate, source=source))
        finally:
            self._slots.release()

    def status(self, task_id: str) -> TaskStatus:
        with self._lock:
            st = self._statuses.get(task_id)
        if st is None:
            raise UnknownTaskError(f"no ingest task {task_id!r} in this process")
        return st

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def open_queue(settings: Settings, pipeline: IngestPipeline) -> IngestQueue:
    """Celery exactly when ``settings.queue == "celery"``; otherwise in-process (see the module docstring)."""
    if settings.queue == "celery":
        if not settings.broker_url.strip():
            raise ConfigError("PROVENANCE_QUEUE=celery needs PROVENANCE_BROKER_URL (a Redis URL)")
        return CeleryQueue(pipeline, settings)
    return InProcessQueue(pipeline)
