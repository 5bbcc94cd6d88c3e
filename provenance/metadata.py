"""Publisher metadata: the free-text facts a publisher states about an image (title, author, source, licence, capture
time, and any other string fields kept under ``extra``). Pure and light: the newsroom client imports it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from provenance.errors import InvalidRecordError

KNOWN_METADATA = ("title", "author", "source_url", "licence", "capture_time")


@dataclass(frozen=True)
class PublisherMetadata:
    title: str | None = None
    author: str | None = None
    source_url: str | None = None
    licence: str | None = None
    capture_time: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_pairs(cls, pairs: dict[str, str]) -> PublisherMetadata:
        known = {k: v for k, v in pairs.items() if k in KNOWN_METADATA}
        extra = {k: v for k, v in pairs.items() if k not in KNOWN_METADATA}
        return cls(**known, extra=extra)

    @classmethod
    def from_obj(cls, obj: Any) -> PublisherMetadata:
        """The stored form (``to_obj``) back; InvalidRecordError for anything else."""
        if not isinstance(obj, dict):
            raise InvalidRecordError("metadata must be an object")
        unknown = set(obj) - set(KNOWN_METADATA) - {"extra"}
        if unknown:
            raise InvalidRecordError(f"metadata fields {sorted(unknown)} belong under 'extra'")
        extra = obj.get("extra", {})
        if not isinstance(extra, dict):
            raise InvalidRecordError("metadata.extra must be an object of strings")
        for key, value in [*((k, obj[k]) for k in KNOWN_METADATA if k in obj), *extra.items()]:
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidRecordError(f"metadata.{key} must be a string")
        return cls(**{k: obj[k] for k in KNOWN_METADATA if k in obj}, extra=dict(extra))

    def to_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {k: getattr(self, k) for k in KNOWN_METADATA if getattr(self, k) is not None}
        if self.extra:
            obj["extra"] = dict(self.extra)
        return obj
