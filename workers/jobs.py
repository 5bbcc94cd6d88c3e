"""One image's ingest as a Celery chain: the step names, the task names, and the job that travels along the chain.

The job is plain JSON (the only serializer the app accepts). It names the image by its CID in the block store
(step 0 put it there at submit), never carries the image bytes, and gathers each step's output for the next one.
The local features blob (~150 KB) is the one large field; it travels only from ``features`` to ``register``.

Priorities make the queue depth-first: a step further along the chain is taken before one that starts a new image
(on the Redis broker a lower number is served first), so a bulk submission finishes images steadily instead of
piling half-done chains, and their feature blobs, up in Redis.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from celery import Celery
from celery.canvas import Signature, chain

from provenance.ingest import hashes_from_obj, hashes_to_obj
from provenance.ledger import IngestResult
from provenance.records import KNOWN_METADATA, PerceptualHash, PublisherMetadata

#: The chain, in order. ``append`` is steps 4+5 (block store, sign, append to the log) in one task.
STEPS: tuple[str, ...] = ("read_c2pa", "hash", "features", "append", "register")
HASH_QUEUE = "hash"
INGEST_QUEUE = "ingest"
ANCHOR_TASK = "provenance.anchor_checkpoint"
_PRIORITY = {"read_c2pa": 9, "hash": 0, "features": 6, "append": 3, "register": 0}
PRIORITY_STEPS = [0, 3, 6, 9]


def task_name(step: str) -> str:
    return f"provenance.ingest.{step}"


def queue_for(step: str) -> str:
    return HASH_QUEUE if step == "hash" else INGEST_QUEUE


def metadata_from_obj(obj: dict[str, Any]) -> PublisherMetadata:
    return PublisherMetadata(**{k: obj[k] for k in KNOWN_METADATA if k in obj}, extra=dict(obj.get("extra", {})))


@dataclass(frozen=True)
class IngestJob:
    id: str
    image_cid: str
    publisher: str
    metadata: dict[str, Any]
    source: str
    c2pa: dict[str, Any] | None = None
    hashes: list[dict[str, Any]] = field(default_factory=list)
    features_b64: str | None = None
    record: dict[str, Any] | None = None  # IngestResult fields, from ``append``
    done: bool = False  # the record exists and is registered already: later steps pass the job through
    retries: int = 0  # retries after transient errors so far, over all steps
    submitted_at: float | None = None  # Unix time of the 202 (the ingest-duration metric)
    details: dict[str, Any] = field(default_factory=dict)  # IngestReport.details(): earlier registration, conflict

    def to_obj(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> IngestJob:
        return cls(**{k: obj[k] for k in cls.__dataclass_fields__ if k in obj})

    def evolve(self, **changes: Any) -> IngestJob:
        return replace(self, **changes)

    # typed views of the JSON fields
    @property
    def publisher_metadata(self) -> PublisherMetadata:
        return metadata_from_obj(self.metadata)

    @property
    def perceptual_hashes(self) -> tuple[PerceptualHash, ...]:
        return hashes_from_obj(self.hashes)

    @property
    def features(self) -> bytes:
        if self.features_b64 is None:
            raise ValueError("the features step has not run for this job")
        return base64.b64decode(self.features_b64)

    @property
    def result(self) -> IngestResult:
        if self.record is None:
            raise ValueError("the append step has not run for this job")
        return IngestResult(**self.record)

    def with_hashes(self, hashes: tuple[PerceptualHash, ...]) -> IngestJob:
        return self.evolve(hashes=hashes_to_obj(hashes))

    def with_features(self, blob: bytes) -> IngestJob:
        return self.evolve(features_b64=base64.b64encode(blob).decode("ascii"))

    def with_result(self, result: IngestResult) -> IngestJob:
        return self.evolve(record=asdict(result))


def ingest_chain(app: Celery, job: IngestJob) -> Signature:
    """The five tasks of one image, by name (the caller need not import the tasks, nor torch)."""
    sigs = [app.signature(task_name(step), priority=_PRIORITY[step]) for step in STEPS]  # queues: app routes
    sigs[0] = sigs[0].clone(args=(job.to_obj(),))
    return chain(*sigs)
