"""``IngestQueue``: how the HTTP API and the CLI hand images to ingest, and follow them.

Two implementations, picked by :func:`open_queue` with one rule: **Celery exactly when** ``PROVENANCE_QUEUE=celery``
(broker ``PROVENANCE_BROKER_URL``, status in ``PROVENANCE_RESULT_BACKEND``); otherwise (the default, ``inprocess``)
a thread pool in this process. A broker URL alone never switches: it has a default, and silently depending on
whichever Redis happens to answer would surprise.

* :class:`CeleryQueue` puts the bytes in the block store (step 0) and sends one chain per image carrying the
  image's CID; separate ``provenance worker`` processes run it. Status lives in the result backend, so any process
  can ask about any ingest.
* :class:`InProcessQueue` runs ``IngestPipeline.ingest`` on a thread pool. Each accepted upload is durable before
  ``submit`` returns: its bytes in the block store and its task in the database (``ingest_tasks``), so a task that a
  crash interrupted is run again by :meth:`InProcessQueue.resume` (``provenance serve`` calls it at start) and its id
  keeps answering after a restart.

Both refuse what can never be ingested (not an image, corrupt, over the limits) in ``submit`` itself, with an
:class:`~provenance.errors.InvalidImageError` naming the source, before anything is written or queued.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from provenance.config import Settings
from provenance.errors import ConfigError, InvalidInputError, ProvenanceError
from provenance.ingest import IngestPipeline
from provenance.ledger import expand_image_paths
from provenance.logging import get_logger
from provenance.ingest_tasks_store import IngestTaskStore, StoredTask
from provenance.metadata import PublisherMetadata
from workers.errors import PublisherBacklogError, QueueFullError, QueueUnavailableError, UnknownTaskError
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

    def depth(self) -> dict[str, int]:
        """How much work waits (``pending``) and runs (``running``), for the queue-depth metric."""
        return {}

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
_REDIS_PRIORITY_SEP = "\x06\x16"  # kombu's Redis transport: queue name + this + priority step (step 0: the name)

class CeleryQueue(IngestQueue):
    """``max_pending_per_publisher``: uploads of one publisher waiting at once, counted in the broker's Redis across
    every replica (``workers.backlog``); None (the CLI's bulk ingest) counts nothing."""

    def __init__(self, pipeline: IngestPipeline, settings: Settings, app=None, *,  # type: ignore[no-untyped-def]
                 max_pending_per_publisher: int | None = None) -> None:
        from workers.app import create_app

        super().__init__(pipeline)
        self.settings = settings
        self.app = app if app is not None else create_app(settings)
        self.backlog = None
        if max_pending_per_publisher is not None:
            import redis

            from workers.backlog import PublisherBacklog
            from workers.status import load_statuses

            client = redis.Redis.from_url(settings.broker_url, socket_timeout=5, socket_connect_timeout=5)
            self.backlog = PublisherBacklog(client, max_pending_per_publisher, settings.broker_visibility_timeout_s,
                                            lambda ids: load_statuses(self.app.backend, ids))

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

        self.pipeline.admit(data, publisher=publisher, metadata=metadata, source=source)
        ingest_id = uuid.uuid4().hex
        if self.backlog is not None:  # this publisher's uploads waiting, over every replica: 429 beyond
            with self._reaching("broker", self.settings.broker_url):
                self.backlog.reserve(publisher, ingest_id)
        try:
            image_cid = self.pipeline.ledger.blockstore.put(data)  # step 0: the chain carries the CID, not the bytes
            job = IngestJob(id=ingest_id, image_cid=image_cid, publisher=publisher, metadata=metadata.to_obj(),
                            source=source, submitted_at=time.time())
            with self._reaching("result backend", self.settings.result_backend):
                save_status(self.app.backend, TaskStatus(job.id, "pending", source=source))  # before a worker starts
            with self._reaching("broker", self.settings.broker_url):
                ingest_chain(self.app, job).apply_async()
        except BaseException:
            if self.backlog is not None:
                with suppress(Exception):
                    self.backlog.release(publisher, ingest_id)
            raise
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
        if self.backlog is not None:
            self.backlog.client.close()
        self.app.close()

    def depth(self) -> dict[str, int]:
        """Chain messages waiting in the broker's ingest and hash queues (every priority), and those delivered but
        not yet acknowledged (running, or held by a worker that died until redelivery). Redis broker layout."""
        import redis

        from workers.jobs import HASH_QUEUE, INGEST_QUEUE, PRIORITY_STEPS

        names = [q if p == 0 else f"{q}{_REDIS_PRIORITY_SEP}{p}" for q in (INGEST_QUEUE, HASH_QUEUE)
                 for p in PRIORITY_STEPS]
        with self._reaching("broker", self.settings.broker_url):
            client = redis.Redis.from_url(self.settings.broker_url, socket_timeout=5, socket_connect_timeout=5)
            try:
                pipe = client.pipeline(transaction=False)
                for name in names:
                    pipe.llen(name)
                pipe.hlen("unacked")
                *waiting, unacked = pipe.execute()
            finally:
                client.close()
        return {"pending": int(sum(waiting)), "running": int(unacked)}


# --- in-process ----------------------------------------------------------------------------------------------------
class InProcessQueue(IngestQueue):
    """``IngestPipeline.ingest`` on a thread pool. While ``max_pending`` images wait (their bytes are held in memory
    until ingested), ``submit`` blocks (the CLI's bulk ingest: backpressure) or, with ``block_when_full=False`` (the
    HTTP API: a blocked submit would hold a thread of the shared pool and leave the client without its task id),
    raises ``QueueFullError`` at once. Statuses of the last ``keep_finished`` finished ingests are kept in memory.

    Durable: ``submit`` returns only once the bytes are in the block store and the task is a row of
    ``ingest_tasks`` (``provenance.ingest_tasks_store``); :meth:`resume` runs again what a dead process accepted,
    and :meth:`status` answers from the database for ids this process never saw (docs/operations.md)."""

    def __init__(self, pipeline: IngestPipeline, *, threads: int = 1, max_pending: int = 64,
                 keep_finished: int = 100_000, block_when_full: bool = True,
                 task_retention_s: float = 30 * 86400.0, max_pending_per_publisher: int | None = None) -> None:
        super().__init__(pipeline)
        self.max_pending_per_publisher = max_pending_per_publisher
        self._pending_by: dict[str, int] = {}  # publisher -> its tasks accepted and not finished
        self._store = IngestTaskStore(pipeline.ledger.engine)  # durable tasks: see resume()
        self._retention_s = task_retention_s
        self._live: dict[str, str] = {}  # unfinished task id -> state, for depth()
        self.max_pending = max_pending
        self.block_when_full = block_when_full
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ingest")
        self._slots = threading.BoundedSemaphore(max_pending)
        self._statuses: OrderedDict[str, TaskStatus] = OrderedDict()
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._keep_finished = keep_finished
        self._lock = threading.Lock()

    def _set(self, st: TaskStatus) -> None:
        with self._lock:
            self._statuses[st.id] = st
            if not st.finished:
                self._live[st.id] = st.state
            else:
                self._live.pop(st.id, None)
                self._finished[st.id] = None
                while len(self._finished) > self._keep_finished:
                    old, _ = self._finished.popitem(last=False)
                    self._statuses.pop(old, None)

    def _count_pending(self, publisher: str, step: int) -> None:
        with self._lock:
            left = self._pending_by.get(publisher, 0) + step
            if left > 0:
                self._pending_by[publisher] = left
            else:
                self._pending_by.pop(publisher, None)

    def _reserve(self, publisher: str) -> None:
        """Count one more unfinished task of ``publisher``, or raise PublisherBacklogError at its limit."""
        limit = self.max_pending_per_publisher
        with self._lock:
            held = self._pending_by.get(publisher, 0)
            if limit is not None and held >= limit:
                raise PublisherBacklogError(f"publisher {publisher!r} already has {held} uploads waiting to be "
                                            f"ingested (at most {limit}); retry once some have finished",
                                            limit=limit)
            self._pending_by[publisher] = held + 1

    def submit(self, data: bytes, *, publisher: str, metadata: PublisherMetadata, source: str = "upload") -> str:
        self.pipeline.admit(data, publisher=publisher, metadata=metadata, source=source)
        task_id = uuid.uuid4().hex
        self._reserve(publisher)
        if not self._slots.acquire(blocking=self.block_when_full):
            self._count_pending(publisher, -1)
            raise QueueFullError(f"ingest queue full: {self.max_pending} images are waiting to be ingested; "
                                 "retry later")
        try:
            # Durable before the caller hears of it: the bytes, then the task (a crash from here on is resumed).
            image_cid = self.pipeline.ledger.blockstore.put(data)
            self._store.add(task_id, publisher_id=publisher, image_cid=image_cid, source=source,
                            metadata_obj=metadata.to_obj())
            self._set(TaskStatus(task_id, "pending", source=source))
            self._executor.submit(self._run, task_id, data, publisher, metadata, source, image_cid=image_cid)
        except BaseException:
            self._slots.release()
            self._count_pending(publisher, -1)
            raise
        return task_id

    def _run(self, task_id: str, data: bytes | None, publisher: str, metadata: PublisherMetadata, source: str, *,
             image_cid: str, holds_slot: bool = True, submitted_at: float | None = None) -> None:
        from provenance.metrics import ingest_outcome, record_error, record_ingest

        started = time.time() if submitted_at is None else submitted_at
        outcome, details = "failed", {}
        try:
            self._store.start(task_id, "ingest")
            self._set(TaskStatus(task_id, "running", "ingest", source=source))
            if data is None:  # resumed after a restart: the bytes are in the block store since submit
                data = self.pipeline.ledger.blockstore.get(image_cid)
            report = self.pipeline.ingest_report(data, publisher=publisher, metadata=metadata, source=source)
        except ProvenanceError as exc:
            outcome = ingest_outcome(exc)
            record_error(exc)
            self._finish(TaskStatus(task_id, "failed", "ingest", error=f"ingest: {exc}", source=source))
        except Exception as exc:  # noqa: BLE001 - a bug must fail this ingest, not kill the pool thread silently
            log.exception("ingest.internal_error", task=task_id, source=source)
            record_error(exc)
            self._finish(TaskStatus(task_id, "failed", "ingest", error=f"ingest: internal error "
                                    f"({type(exc).__name__}: {exc})", source=source))
        else:
            result, details = report.result, report.details()
            outcome = "duplicate" if result.duplicate else "appended"
            self._finish(TaskStatus(task_id, "succeeded", "ingest", result.cid, result.duplicate, source=source)
                         .with_details(details))
        finally:
            record_ingest(outcome, time.time() - started, details=details)
            self._count_pending(publisher, -1)
            if holds_slot:
                self._slots.release()

    def _finish(self, st: TaskStatus) -> None:
        self._set(st)
        details = {k: v for k, v in st.to_obj().items() if k.startswith("earlier_") or k == "metadata_conflict"}
        try:
            self._store.finish(st.id, state=st.state, step=st.step, record_cid=st.record_cid,
                               duplicate=st.duplicate, error=st.error,
                               details={k: v for k, v in details.items() if v})
        except Exception as exc:  # noqa: BLE001 - the row stays "running": a restart runs it again (idempotent)
            log.warning("ingest.task_not_saved", task=st.id, state=st.state, error=f"{type(exc).__name__}: {exc}")

    def status(self, task_id: str) -> TaskStatus:
        with self._lock:
            st = self._statuses.get(task_id)
        if st is None:
            stored = self._store.get(task_id)  # accepted before a restart, or finished long ago
            if stored is None:
                raise UnknownTaskError(f"no ingest task {task_id!r}")
            st = _status_of(stored)
        return st

    def depth(self) -> dict[str, int]:
        with self._lock:
            states = list(self._live.values())
        return {state: states.count(state) for state in ("pending", "running")}

    def resume(self) -> int:
        """Run again every task an earlier process accepted but did not finish (its bytes are in the block store),
        oldest first; give up on one that was interrupted ``MAX_ATTEMPTS`` times (it may be what kills the
        process); forget finished tasks older than the retention. Returns how many were resumed."""
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=self._retention_s)
        pruned = self._store.prune(cutoff)
        resumed = gave_up = 0
        for task in self._store.unfinished():
            with self._lock:
                if task.id in self._statuses:  # this process's own
                    continue
            if task.attempts >= MAX_ATTEMPTS:
                gave_up += 1
                self._finish(TaskStatus(task.id, "failed", task.step or "ingest", source=task.source, error=(
                    f"ingest: interrupted {task.attempts} times (the process ended while ingesting it); "
                    "not tried again")))
                continue
            self._set(TaskStatus(task.id, "pending", source=task.source))
            self._count_pending(task.publisher_id, +1)  # counts towards its publisher's backlog until it finishes
            self._executor.submit(self._run, task.id, None, task.publisher_id,
                                  PublisherMetadata.from_obj(task.metadata), task.source, image_cid=task.image_cid,
                                  holds_slot=False, submitted_at=task.created_at.timestamp())
            resumed += 1
        if resumed or gave_up or pruned:
            log.warning("ingest.resumed", resumed=resumed, gave_up=gave_up, pruned=pruned)
        return resumed

    def close(self) -> None:
        """Finish the ingests running now; those still waiting stay pending in the database, and the next
        :meth:`resume` (the next ``provenance serve``) runs them, so a shutdown never waits for the backlog."""
        self._executor.shutdown(wait=True, cancel_futures=True)


#: Starts of one in-process task after which a restart stops running it again (it may be what kills the process).
MAX_ATTEMPTS = 3


def _status_of(task: StoredTask) -> TaskStatus:
    return TaskStatus(task.id, task.state, task.step, task.record_cid, task.duplicate, task.error,  # type: ignore[arg-type]
                      source=task.source).with_details(task.details)


def open_queue(settings: Settings, pipeline: IngestPipeline, *, block_when_full: bool = True) -> IngestQueue:
    """Celery exactly when ``settings.queue == "celery"``; otherwise in-process (see the module docstring);
    ``block_when_full=False`` makes a full in-process queue refuse at once (see :class:`InProcessQueue`)."""
    # The per-publisher bound is the API's (block_when_full=False); the CLI's bulk ingest is the operator's own.
    per_publisher = None if block_when_full else settings.ingest_max_pending_per_publisher
    if settings.queue == "celery":
        if not settings.broker_url.strip():
            raise ConfigError("PROVENANCE_QUEUE=celery needs PROVENANCE_BROKER_URL (a Redis URL)")
        return CeleryQueue(pipeline, settings, max_pending_per_publisher=per_publisher)
    return InProcessQueue(pipeline, block_when_full=block_when_full, max_pending_per_publisher=per_publisher,
                          task_retention_s=settings.ingest_task_retention_s)
