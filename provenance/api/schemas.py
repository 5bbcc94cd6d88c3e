"""Response and request models of the HTTP API (pydantic lives only here, at the edge), for validation and /docs."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from provenance.errors import InvalidMetadataError
from provenance.metadata import KNOWN_METADATA, PublisherMetadata


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_image"])
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class TaskAccepted(BaseModel):
    task_id: str
    state: Literal["pending", "running", "succeeded", "failed"]
    status_url: str


class TaskStatusOut(BaseModel):
    task_id: str
    state: Literal["pending", "running", "succeeded", "failed"]
    step: str | None = None
    record_cid: str | None = None
    record_url: str | None = None
    duplicate: bool | None = None
    error: str | None = None
    earlier_record_cid: str | None = Field(None, description="Another publisher registered this image first (same "
                                           "bytes or a verified near-duplicate): that record. Flagged, not refused, "
                                           "under PROVENANCE_INGEST_DUPLICATE_POLICY=flag.")
    earlier_publisher: str | None = None
    earlier_leaf_index: int | None = None
    earlier_match: Literal["sha256", "near-duplicate"] | None = None
    metadata_conflict: bool | None = Field(None, description="These bytes were registered already by this publisher "
                                           "with other metadata: the existing record (record_cid) and its metadata "
                                           "were kept, this upload's metadata was not used.")


# --- publisher metadata: POST /v1/assets "metadata" and the CLI's --meta share these rules ------------------------
METADATA_MAX_KEYS = 64  # known fields and free-form ones together
METADATA_MAX_KEY_CHARS = 64
METADATA_MAX_TITLE_CHARS = 1_000
METADATA_MAX_VALUE_CHARS = 4_096
METADATA_MAX_JSON_BYTES = 256 * 1024  # the metadata form field, before parsing
METADATA_MAX_DEPTH = 2  # the object, and "extra" inside it
# C0 controls other than tab, newline and carriage return, DEL, and surrogates (a lone one is not Unicode text:
# it is what an escaped "\ud800" or invalid UTF-8 bytes become).
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")

MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=METADATA_MAX_KEY_CHARS)]
MetadataValue = Annotated[str, StringConstraints(max_length=METADATA_MAX_VALUE_CHARS)]


class _JsonNumber:
    """A number in metadata JSON, kept as its text: metadata values are strings, and converting a 5,000-digit
    integer would itself fail (Python refuses int() of more than 4,300 digits)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _check_text(where: str, text: str) -> None:
    bad = _FORBIDDEN_CHARS.search(text)
    if bad is None:
        return
    char = bad.group()
    if "\ud800" <= char <= "\udfff":
        raise ValueError(f"{where}: not valid UTF-8 text (a lone surrogate or an invalid byte at character "
                         f"{bad.start()})")
    raise ValueError(f"{where}: control character U+{ord(char):04X} at character {bad.start()}")


class MetadataIn(BaseModel):
    """Publisher metadata as clients send it: the known fields at the top level, any other string field either at
    the top level or under ``extra``. Strings only; ``capture_time`` is an RFC 3339 / ISO 8601 time."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    title: str | None = Field(None, max_length=METADATA_MAX_TITLE_CHARS)
    author: MetadataValue | None = None
    source_url: MetadataValue | None = None
    licence: MetadataValue | None = None
    capture_time: str | None = Field(None, max_length=64, examples=["2024-05-01T06:12:00Z"])
    extra: dict[MetadataKey, MetadataValue] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _gather_extra(cls, obj: Any) -> Any:
        if not isinstance(obj, dict):
            raise ValueError("must be a JSON object")
        extra = obj.get("extra") or {}
        if not isinstance(extra, dict):
            raise ValueError("extra: must be a JSON object of strings")
        if any(k in KNOWN_METADATA for k in extra):
            raise ValueError(f"extra: {', '.join(KNOWN_METADATA)} go at the top level")
        out: dict[str, Any] = {}
        free: dict[str, Any] = {}
        for key, value in [*((k, v) for k, v in obj.items() if k != "extra"), *extra.items()]:
            if value is None:  # null means "not given"
                continue
            if key in out or key in free:
                raise ValueError(f"{key}: given twice")
            (out if key in KNOWN_METADATA else free)[key] = value
        if len(out) + len(free) > METADATA_MAX_KEYS:
            raise ValueError(f"{len(out) + len(free)} fields exceed the limit of {METADATA_MAX_KEYS}")
        for key, value in [*out.items(), *free.items()]:  # before pydantic, whose own message for these is vague
            _check_text(f"field name {key[:40]!r}", key)
            if isinstance(value, str):
                _check_text(key[:40], value)
        return {**out, "extra": free}

    @field_validator("capture_time")
    @classmethod
    def _capture_time(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"not an RFC 3339 / ISO 8601 time: {value[:40]!r} (e.g. 2024-05-01T06:12:00Z)") \
                from None
        return value

    def to_metadata(self) -> PublisherMetadata:
        return PublisherMetadata(title=self.title, author=self.author, source_url=self.source_url,
                                 licence=self.licence, capture_time=self.capture_time, extra=dict(self.extra))


def _reason(exc: ValidationError) -> str:
    errs = exc.errors()
    first = errs[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    msg = str(first.get("msg", "invalid"))
    if first.get("type") == "string_type" or (first.get("type") or "").endswith("_type"):
        found = first.get("input")
        kind = "a number" if isinstance(found, _JsonNumber) else type(found).__name__
        msg = f"must be a string, not {kind}"
    msg = msg.removeprefix("Value error, ")
    more = f" (and {len(errs) - 1} more problems)" if len(errs) > 1 else ""
    return f"metadata{'.' + where if where else ''}: {msg}{more}"


def validate_metadata(obj: Any) -> PublisherMetadata:
    """The one place metadata rules are applied (HTTP and CLI): raises :class:`InvalidMetadataError` with the
    reason."""
    try:
        return MetadataIn.model_validate(obj).to_metadata()
    except ValidationError as exc:
        raise InvalidMetadataError(_reason(exc)) from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidMetadataError(f"metadata: the key {key[:40]!r} appears twice (JSON objects must not repeat "
                                       "keys: which one would count is ambiguous)")
        out[key] = value
    return out


def parse_metadata_json(text: str | None) -> PublisherMetadata:
    """The ``metadata`` form field of ``POST /v1/assets``: JSON text, bounded before parsing (size, depth), then
    parsed without converting numbers and refusing repeated keys, then :func:`validate_metadata`."""
    if text is None or not text.strip():
        return PublisherMetadata()
    from provenance.api.json_limits import json_depth

    data = text.encode("utf-8", "surrogatepass")
    if len(data) > METADATA_MAX_JSON_BYTES:
        raise InvalidMetadataError(f"metadata: {len(data)} bytes of JSON exceed the limit of "
                                   f"{METADATA_MAX_JSON_BYTES}")
    try:
        _check_text("metadata", text)  # lone surrogates (bytes that were not UTF-8), raw control characters
    except ValueError as exc:
        raise InvalidMetadataError(str(exc)) from None
    depth = json_depth(data)
    if depth > METADATA_MAX_DEPTH:
        raise InvalidMetadataError(f"metadata: nested {depth} levels deep; it is an object of strings with at most "
                                   f"one nested object, extra")
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_int=_JsonNumber,
                         parse_float=_JsonNumber, parse_constant=_JsonNumber)
    except json.JSONDecodeError as exc:
        raise InvalidMetadataError(f"metadata: not valid JSON ({exc.msg} at {exc.pos})") from None
    return validate_metadata(obj)


def metadata_from_pairs(pairs: list[tuple[str, str]]) -> PublisherMetadata:
    """The CLI's ``--meta KEY=VALUE`` pairs, under the same rules (a key given twice is refused)."""
    obj: dict[str, str] = {}
    for key, value in pairs:
        if key in obj:
            raise InvalidMetadataError(f"metadata.{key[:40]}: given twice")
        obj[key] = value
    return validate_metadata(obj)


class Withdrawn(BaseModel):
    record_cid: str
    withdrawn: bool
    event_cid: str | None = None  # the record-withdrawal key event in the log


# --- C2PA Soft Binding Resolution API (its schema names: c2pa.softBindingQuery / ...QueryResult / ...AlgList) -----
class SoftBindingQuery(BaseModel):
    alg: str = Field(description="Soft binding algorithm: one of GET /services/supportedAlgorithms.")
    value: str = Field(description="Base64 of the code's bytes (big-endian); our hex form is accepted too.")


class SoftBindingMatch(BaseModel):
    manifestId: str = Field(description="The C2PA manifest label of the record's manifest (urn:c2pa:...): "
                            "GET /manifests/{manifestId}.")
    similarityScore: int = Field(ge=0, le=100, description="From the algorithm's calibration on unrelated photos: "
                                 "100 identical, 50 at the target false-match rate (docs/c2pa-softbinding.md); 25: the source of "
                                 "an edited copy (byContent).")
    endpoint: str | None = Field(None, description="Absent: fetch it from this service's /manifests.")


class SoftBindingQueryResult(BaseModel):
    matches: list[SoftBindingMatch]


class SoftBindingAlg(BaseModel):
    alg: str


class SoftBindingAlgList(BaseModel):
    watermarks: list[SoftBindingAlg]
    fingerprints: list[SoftBindingAlg]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "Malformed request: not a CID, a malformed multipart form (e.g. too many fields), or JSON nested "
             "deeper than PROVENANCE_API_MAX_JSON_DEPTH",
        401: "Missing, unknown or revoked API key",
        403: "The key's publisher may not act on this resource",
        404: "Not found",
        408: "The request body stalled or took too long to arrive (the connection is closed)",
        409: "Conflicts with what is registered (the body names the record): other metadata for the same bytes, "
             "or another publisher's earlier registration under PROVENANCE_INGEST_DUPLICATE_POLICY=refuse",
        410: "Withdrawn by its publisher: the signed record stays in the log, its image is no longer served",
        413: "Upload (or JSON body) over the size limit",
        414: "Query string too long for this route (soft binding values: use POST /matches/byBinding)",
        415: "Not an image we can read (sniffed from the bytes)",
        422: "Corrupt image or invalid fields",
        429: "Rate limited, this client already has its share of heavy requests running, or (uploads) the "
             "publisher already has PROVENANCE_INGEST_MAX_PENDING_PER_PUBLISHER uploads waiting (see Retry-After)",
        503: "A backing service (block store, chain, database) is unavailable, or the server is at capacity (every "
             "heavy-work slot busy, the ingest queue full; see Retry-After)",
    }.items()
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: ERROR_RESPONSES[c] for c in codes}
