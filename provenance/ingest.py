"""The ingest pipeline as six steps over one image (issue 6), each callable on its own so a queue can run them as
separate tasks (``workers/``), and all of them in one call for the embedded default (``IngestPipeline.ingest``).

1. ``read_c2pa``      the C2PA summary that goes into the record (None when the image carries none)
2. ``hash``           every configured perceptual hash (OSCAR-Net on a GPU worker when there is one)
3. ``features``       local features for geometric verification at lookup
4.+5. ``append``      image and record into the block store, then signed and appended to the log (``Ledger``)
6. ``register``       local features beside the record, and every hash into the lookup index

Each step is idempotent: the same bytes from the same publisher give the same record (the ledger checks by sha256
first), storing features replaces the same row, and the index ignores a (channel, record) it already holds. So a
queue that re-runs a step after a worker died (``acks_late``) never duplicates anything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance.errors import InvalidImageError, MetadataConflictError, ProvenanceError
from provenance.images import inspect_image
from provenance.ledger import IngestFailure, IngestResult, Ledger, expand_image_paths
from provenance.logging import get_logger
from provenance.precedence import (
    DuplicatePolicy,
    PriorRegistration,
    earliest_near_duplicate,
    earliest_same_image,
    refuse,
)
from provenance.records import PerceptualHash, PublisherMetadata

log = get_logger(__name__)


def hashes_to_obj(hashes: Iterable[PerceptualHash]) -> list[dict[str, Any]]:
    return [h.to_obj() for h in hashes]


def hashes_from_obj(objs: Iterable[dict[str, Any]]) -> tuple[PerceptualHash, ...]:
    return tuple(PerceptualHash(alg=o["alg"], model_id=o["model_id"], bits=int(o["bits"]), value=o["value"])
                 for o in objs)


@dataclass(frozen=True)
class Analysis:
    """Steps 1-3 of one image: everything computed from the bytes alone."""

    c2pa: dict[str, Any] | None
    hashes: tuple[PerceptualHash, ...]
    features: bytes


@dataclass(frozen=True)
class IngestReport:
    """An ingest's result and what the uploader should know about it: ``prior`` is another publisher's earlier
    record of the same image (``provenance.precedence``); ``metadata_conflict`` says the bytes were registered
    already by this publisher with other metadata, which the existing record kept (records are immutable)."""

    result: IngestResult
    prior: PriorRegistration | None = None
    metadata_conflict: bool = False

    def details(self) -> dict[str, Any]:
        """The extra fields of a task result (empty when there is nothing to say)."""
        out: dict[str, Any] = self.prior.to_obj() if self.prior is not None else {}
        if self.metadata_conflict:
            out["metadata_conflict"] = True
        return out


def _conflicts(kept: PublisherMetadata, given: PublisherMetadata) -> bool:
    """Whether ``given`` metadata would be lost if the record keeping ``kept`` were returned instead: it says
    something (an upload without metadata loses nothing), and something else."""
    return given != PublisherMetadata() and given != kept


def record_metadata(record_bytes: bytes) -> PublisherMetadata:
    from provenance.records import parse_record

    return parse_record(record_bytes).record.metadata


class IngestPipeline:
    def __init__(self, ledger: Ledger, lookup: Any, *, c2pa_trust_anchors: str | None = None,
                 duplicate_policy: DuplicatePolicy = "flag") -> None:
        self.ledger = ledger
        self.lookup = lookup  # provenance.lookup.service.Lookup: the index and feature store it searches
        self.c2pa_trust_anchors = c2pa_trust_anchors
        self.duplicate_policy = duplicate_policy  # another publisher's earlier record: flag it, or refuse

    # --- steps ------------------------------------------------------------------------------------------------------
    def check(self, data: bytes, *, source: str = "image") -> None:
        """Refuse what can never be ingested (not an image, over the limits) before any work is queued."""
        inspect_image(data, max_bytes=self.ledger.config.max_image_bytes,
                      max_pixels=self.ledger.config.max_image_pixels, name=source)

    def admit(self, data: bytes, *, publisher: str, metadata: PublisherMetadata, source: str = "image") -> None:
        """Everything a queue's ``submit`` refuses before answering (nothing is written): :meth:`check`; these bytes
        registered already by this publisher with other metadata (``MetadataConflictError``: the record is
        immutable, so the new metadata could only be dropped; an upload without metadata drops nothing and gets
        the existing record); and, under the ``refuse`` policy, the same bytes
        registered earlier by another publisher (``DuplicateImageError``). A near-duplicate needs the hashes: the
        ingest itself refuses those (:meth:`precedence`)."""
        self.check(data, source=source)
        sha = hashlib.sha256(data).hexdigest()
        with self.ledger.reader.connect() as conn:
            own = self.ledger.store.find_by_image(conn, publisher, sha)
        if own is not None and _conflicts(record_metadata(own.record_bytes), metadata):
            raise MetadataConflictError(
                f"{source}: publisher {publisher!r} registered these bytes already as record {own.cid} with other "
                "metadata; records are immutable, so that record and its metadata stand (send the same metadata "
                "to get the existing record back)", record_cid=own.cid, publisher_id=publisher)
        if own is None and self.duplicate_policy == "refuse":
            prior = earliest_same_image(self.ledger, data, other_than=publisher)
            if prior is not None:
                raise refuse(prior, publisher)

    def precedence(self, data: bytes, *, publisher: str,
                   hashes: tuple[PerceptualHash, ...]) -> PriorRegistration | None:
        """Another publisher's earlier record of this image (same bytes, or a near-duplicate a lookup verifies as a
        match), or None. Under the ``refuse`` policy finding one raises ``DuplicateImageError``; under ``flag`` a
        failure of the near-duplicate search (a service down) costs the flag, never the ingest."""
        prior = earliest_same_image(self.ledger, data, other_than=publisher)
        if prior is None:
            try:
                prior = earliest_near_duplicate(self.lookup, data, hashes, other_than=publisher)
            except ProvenanceError as exc:
                if self.duplicate_policy == "refuse":
                    raise
                log.warning("ingest.precedence_unchecked", publisher=publisher, error=str(exc))
        if prior is not None and self.duplicate_policy == "refuse":
            raise refuse(prior, publisher)
        if prior is not None:
            log.info("ingest.registered_earlier", publisher=publisher, earlier=prior.record_cid,
                     earlier_publisher=prior.publisher_id, match=prior.match)
        return prior

    def metadata_conflict(self, result: IngestResult, metadata: PublisherMetadata) -> bool:
        """Whether an ingest that found its record already made was asked for other metadata than it holds."""
        if not result.duplicate:
            return False
        with self.ledger.reader.connect() as conn:
            stored = self.ledger.store.get(conn, result.cid)
        return stored is not None and _conflicts(record_metadata(stored.record_bytes), metadata)

    def read_c2pa(self, data: bytes) -> dict[str, Any] | None:
        from provenance.c2pa import read_c2pa

        summary = read_c2pa(data, trust_anchors=self.c2pa_trust_anchors)
        return None if summary.status == "absent" else summary.to_obj()

    def hash(self, data: bytes) -> tuple[PerceptualHash, ...]:
        return self.ledger.hash_image(data)

    def features(self, data: bytes) -> bytes:
        return self.lookup.extract_features(data)

    def append(self, data: bytes, *, publisher: str, metadata: PublisherMetadata, hashes: tuple[PerceptualHash, ...],
               c2pa: dict[str, Any] | None, source: str = "image") -> IngestResult:
        return self.ledger.ingest(data, publisher=publisher, metadata=metadata, source=source, hashes=hashes, c2pa=c2pa)

    def register(self, result: IngestResult, *, publisher: str, hashes: tuple[PerceptualHash, ...],
                 features: bytes) -> None:
        self.lookup.register(result.cid, publisher, hashes, features)

    # --- all at once ------------------------------------------------------------------------------------------------
    def analyse(self, data: bytes) -> Analysis:
        return Analysis(self.read_c2pa(data), self.hash(data), self.features(data))

    def ingest(self, data: bytes, *, publisher: str, metadata: PublisherMetadata, source: str = "image") -> IngestResult:
        """Every step in this process (the embedded default: no broker)."""
        return self.ingest_report(data, publisher=publisher, metadata=metadata, source=source).result

    def ingest_report(self, data: bytes, *, publisher: str, metadata: PublisherMetadata,
                      source: str = "image") -> IngestReport:
        """:meth:`ingest`, with what the uploader should be told (an earlier registration, a metadata conflict)."""
        self.check(data, source=source)
        existing = self.ledger.find_existing(data, publisher)
        if existing is not None and self.lookup.is_registered(existing.cid):
            return IngestReport(existing, earliest_same_image(self.ledger, data, other_than=publisher),
                                self.metadata_conflict(existing, metadata))
        analysis = self.analyse(data)
        prior = None if existing is not None else self.precedence(data, publisher=publisher, hashes=analysis.hashes)
        result = self.append(data, publisher=publisher, metadata=metadata, hashes=analysis.hashes,
                             c2pa=analysis.c2pa, source=source)
        self.register(result, publisher=publisher, hashes=analysis.hashes, features=analysis.features)
        return IngestReport(result, prior, self.metadata_conflict(result, metadata))

    def ingest_paths(self, paths: Iterable[Path], *, publisher: str,
                     metadata: PublisherMetadata) -> Iterator[IngestResult | IngestFailure]:
        for path in expand_image_paths(paths):
            try:
                yield self.ingest(path.read_bytes(), publisher=publisher, metadata=metadata, source=str(path))
            except (InvalidImageError, OSError) as exc:
                err = exc if isinstance(exc, ProvenanceError) else InvalidImageError(f"{path}: {exc}")
                yield IngestFailure(str(path), err)
