"""Errors of the ingest queue. They extend the ``provenance`` error tree, so the CLI and the HTTP layer map them
like any other ``ProvenanceError`` (exit code 3; ``UnknownTaskError`` is the caller's mistake, e.g. HTTP 404)."""

from __future__ import annotations

from provenance.errors import InvalidInputError, ProvenanceError


class QueueError(ProvenanceError):
    """The ingest queue failed."""


class QueueUnavailableError(QueueError):
    """The broker or result backend cannot be reached; ``where`` names it (without credentials)."""

    def __init__(self, message: str, *, where: str) -> None:
        super().__init__(f"{message} (at {where})")
        self.where = where


class UnknownTaskError(QueueError, InvalidInputError):
    """No ingest task of that id was submitted (or its status has expired)."""


class PublisherBacklogError(QueueError):
    """One publisher already has ``limit`` uploads accepted and not yet ingested (HTTP 429 with Retry-After): its
    own backlog, so it waits, while other publishers' uploads are still accepted."""

    def __init__(self, message: str, *, limit: int, retry_after_s: float = 10.0) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after_s = retry_after_s


class QueueFullError(QueueError):
    """Every pending slot of the queue is taken: the caller should retry after ``retry_after_s`` (HTTP 503 with
    Retry-After). Raised at once, so a full queue never holds a caller's thread."""

    def __init__(self, message: str, *, retry_after_s: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
