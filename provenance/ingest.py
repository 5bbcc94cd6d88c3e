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

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance.errors import InvalidImageError, ProvenanceError
from provenance.images import inspect_image
from provenance.ledger import IngestFailure, IngestResult, Ledger, expand_image_paths
from provenance.logging import get_logger
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


class IngestPipeline:
    def __init__(self, ledger: Ledger, lookup: Any, *, c2pa_trust_anchors: str | None = None) -> None:
        self.ledger = ledger
        self.lookup = lookup  # provenance.lookup.service.Lookup: the index and feature store it searches
        self.c2pa_trust_anchors = c2pa_trust_anchors

    # --- steps ------------------------------------------------------------------------------------------------------
    def check(self, data: bytes, *, source: str = "image") -> None:
        """Refuse what can never be ingested (not an image, over the limits) before any work is queued."""
        inspect_image(data, max_bytes=self.ledger.config.max_image_bytes,
                      max_pixels=self.ledger.config.max_image_pixels, name=source)

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
        self.check(data, source=source)
        existing = self.ledger.find_existing(data, publisher)
        if existing is not None and self.lookup.is_registered(existing.cid):
            return existing
        analysis = self.analyse(data)
        result = self.append(data, publisher=publisher, metadata=metadata, hashes=analysis.hashes,
                             c2pa=analysis.c2pa, source=source)
        self.register(result, publisher=publisher, hashes=analysis.hashes, features=analysis.features)
        return result

    def ingest_paths(self, paths: Iterable[Path], *, publisher: str,
                     metadata: PublisherMetadata) -> Iterator[IngestResult | IngestFailure]:
        for path in expand_image_paths(paths):
            try:
                yield self.ingest(path.read_bytes(), publisher=publisher, metadata=metadata, source=str(path))
            except (InvalidImageError, OSError) as exc:
                err = exc if isinstance(exc, ProvenanceError) else InvalidImageError(f"{path}: {exc}")
                yield IngestFailure(str(path), err)
