"""Canonical JSON (RFC 8785, JCS): the one byte form records are signed, addressed and stored in."""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from provenance.errors import InvalidRecordError
from provenance.json_bounds import MAX_DOCUMENT_DEPTH, json_depth


def canonical_json(obj: Any) -> bytes:
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise InvalidRecordError(f"cannot canonicalise: {exc}") from exc


def parse_canonical_json(data: bytes) -> Any:
    """Parse JSON and insist it is already in canonical form, so one record has exactly one byte form and one CID.

    The nesting depth is bounded before parsing (``json_bounds``): these bytes may come from a block store, a bundle
    or tiles, and a deeply nested document must be an InvalidRecordError, not a RecursionError or a crash."""
    depth = json_depth(data)
    if depth > MAX_DOCUMENT_DEPTH:
        raise InvalidRecordError(f"JSON nested {depth} levels deep (at most {MAX_DOCUMENT_DEPTH})")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRecordError(f"not valid UTF-8 JSON: {exc}") from exc
    if canonical_json(obj) != data:
        raise InvalidRecordError("JSON is not in RFC 8785 canonical form")
    return obj
