"""The status of one ingest, as callers see it, and where the Celery implementation keeps it.

An ingest is one chain of tasks, so no single Celery task id describes it. Each ingest gets its own id; the tasks
of its chain write one small status entry under that id in the result backend (the tasks themselves store no
results: their return values travel in the chain's messages only). One entry per image, overwritten as the chain
moves on, expiring with Celery's ``result_expires`` (a day by default).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from celery.backends.base import Backend

TaskState = Literal["pending", "running", "succeeded", "failed"]
FINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed"})

# Celery state names for our entries: never Celery's own (PENDING means "unknown id" to Celery, and its
# exception states would try to rebuild an exception from our dict).
_CELERY_STATE = {"pending": "INGEST_QUEUED", "running": "INGEST_RUNNING",
                 "succeeded": "INGEST_SUCCEEDED", "failed": "INGEST_FAILED"}


@dataclass(frozen=True)
class TaskStatus:
    """Where one submitted image is.

    ``step`` is the step running or last run (``read_c2pa``, ``hash``, ``features``, ``append``, ``register`` in a
    Celery chain; ``ingest`` in-process); ``duplicate`` is true when the record already existed when this ingest
    appended (a re-submission, or an append redelivered after a worker died); ``error`` says why it failed;
    ``retries`` counts retries after transient errors so far; ``earlier_*`` name another publisher's earlier record
    of the same image (flagged by the duplicate policy); ``metadata_conflict`` says a duplicate's record kept its
    own metadata, which differs from this upload's.
    """

    id: str
    state: TaskState
    step: str | None = None
    record_cid: str | None = None
    duplicate: bool = False
    error: str | None = None
    retries: int = 0
    source: str | None = None
    # Precedence (``provenance.precedence``): another publisher's earlier record of the same image.
    earlier_record_cid: str | None = None
    earlier_publisher: str | None = None
    earlier_leaf_index: int | None = None
    earlier_match: str | None = None  # "sha256" or "near-duplicate"
    metadata_conflict: bool = False  # a duplicate whose existing record kept other metadata than this upload's

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    def to_obj(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> TaskStatus:
        return cls(**{k: obj[k] for k in cls.__dataclass_fields__ if k in obj})

    def evolve(self, **changes: Any) -> TaskStatus:
        return replace(self, **changes)

    def with_details(self, details: dict[str, Any]) -> TaskStatus:
        """With an ingest report's extra fields (``IngestReport.details()``)."""
        return replace(self, **{k: v for k, v in details.items() if k in self.__dataclass_fields__})


def may_replace(current: TaskStatus | None, new: TaskStatus) -> bool:
    """A finished ingest stays finished: a step replayed after a worker died must not make it look running again,
    and a failure in a replayed branch must not hide that the record was made."""
    if current is None or not current.finished:
        return True
    return new.finished and not (current.state == "succeeded" and new.state == "failed")


def save_status(backend: Backend, status: TaskStatus) -> None:
    if may_replace(load_status(backend, status.id), status):
        backend.store_result(status.id, status.to_obj(), _CELERY_STATE[status.state])


def load_status(backend: Backend, ingest_id: str) -> TaskStatus | None:
    meta = backend.get_task_meta(ingest_id)
    if meta.get("status") not in _CELERY_STATE.values() or not isinstance(meta.get("result"), dict):
        return None
    return TaskStatus.from_obj(meta["result"])


def load_statuses(backend: Backend, ingest_ids: list[str]) -> dict[str, TaskStatus | None]:
    """Many at once: one round trip on key-value backends (Redis ``MGET``), one per id on others."""
    if not hasattr(backend, "mget"):
        return {i: load_status(backend, i) for i in ingest_ids}
    keys = [backend.get_key_for_task(i) for i in ingest_ids]
    out: dict[str, TaskStatus | None] = {}
    for ingest_id, raw in zip(ingest_ids, backend.mget(keys)):
        meta = backend.decode_result(raw) if raw else {}
        ok = meta.get("status") in _CELERY_STATE.values() and isinstance(meta.get("result"), dict)
        out[ingest_id] = TaskStatus.from_obj(meta["result"]) if ok else None
    return out
