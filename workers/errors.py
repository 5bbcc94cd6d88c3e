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
