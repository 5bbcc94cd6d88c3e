"""Errors of the hash index, under :class:`provenance.errors.ProvenanceError`.

They live beside the index (not in ``provenance/errors.py``) so the index can grow without touching the shared
module; every class still derives from the package's base, so callers that catch ``ProvenanceError`` (CLI, HTTP API)
need nothing new. Bad caller input derives from :class:`~provenance.errors.InvalidInputError` as elsewhere.
"""

from __future__ import annotations

from provenance.errors import InvalidInputError, ProvenanceError

__all__ = [
    "DuplicateIdError",
    "EmptyIndexError",
    "HashIndexError",
    "IndexConflictError",
    "IndexCorruptError",
    "IndexEntryNotFoundError",
    "IndexFileMissingError",
    "IndexPermissionError",
    "InvalidCodeError",
]


class HashIndexError(ProvenanceError):
    """Base of the hash index's own failures."""


class InvalidCodeError(InvalidInputError):
    """A hash code, id array or bit width is malformed (wrong shape, dtype, length or value)."""


class DuplicateIdError(InvalidInputError):
    """An id given to ``add`` is already in the index (or repeated within the batch)."""


class IndexConflictError(InvalidInputError):
    """A channel + record CID is already indexed with a different code or publisher."""


class IndexCorruptError(HashIndexError):
    """An index file or its sidecar is unreadable, truncated, or does not match the sidecar's sha256."""


class IndexFileMissingError(HashIndexError):
    """No index file (or no sidecar) at the given path."""


class EmptyIndexError(HashIndexError):
    """A search asked a channel that has no live entries."""


class IndexEntryNotFoundError(HashIndexError):
    """No catalog entry for that record CID."""


class IndexPermissionError(HashIndexError):
    """A publisher tried to withdraw an entry that another publisher indexed."""
