"""Every HTTP error has one JSON shape, ``{"error": {"code", "message"}}``, and ``provenance.errors`` types map to
status codes in exactly one place: :data:`ERROR_STATUS`, used by the exception handlers installed here.

Routes raise :class:`ApiError` for conditions that only exist at the HTTP edge (no key, rate limit, upload size,
media type) and let ``ProvenanceError`` subclasses propagate for everything else.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from provenance.errors import (
    BlockNotFoundError,
    BlockStoreUnavailableError,
    ChainUnavailableError,
    ConfigError,
    IntegrityError,
    InvalidCIDError,
    InvalidImageError,
    InvalidInputError,
    InvalidMetadataError,
    DuplicateImageError,
    IngestConflictError,
    MetadataConflictError,
    KeyEventError,
    ProvenanceError,
    ReplayError,
    RevokedKeyError,
    SignatureError,
    StatementError,
    StoreError,
    TileNotFoundError,
    TilePathError,
    UnknownPublisherError,
    WitnessQuorumError,
)
from provenance.api.keys import AuthenticationError, ForbiddenError
from provenance.index.errors import IndexEntryNotFoundError, IndexPermissionError
from provenance.logging import get_logger
from provenance.metrics import record_error
from provenance.lookup.errors import FeatureBlobError
from workers.errors import PublisherBacklogError, QueueFullError, QueueUnavailableError, UnknownTaskError

log = get_logger(__name__)


class ApiError(Exception):
    """An error that exists only at the HTTP edge; rendered as ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


# Most specific first: the first class an exception is an instance of decides. The 503s name the part that is down.
ERROR_STATUS: tuple[tuple[type[BaseException], int, str], ...] = (
    (AuthenticationError, 401, "unauthorized"),
    (ForbiddenError, 403, "forbidden"),
    (BlockStoreUnavailableError, 503, "blockstore_unavailable"),
    (ChainUnavailableError, 503, "chain_unavailable"),
    (OperationalError, 503, "database_unavailable"),
    (QueueUnavailableError, 503, "queue_unavailable"),
    (QueueFullError, 503, "queue_full"),
    (PublisherBacklogError, 429, "too_many_pending"),
    (WitnessQuorumError, 503, "witnesses_unavailable"),
    (BlockNotFoundError, 404, "not_found"),
    (UnknownTaskError, 404, "not_found"),
    (IndexEntryNotFoundError, 404, "not_found"),
    (TileNotFoundError, 404, "not_found"),
    (TilePathError, 400, "invalid_tile_path"),
    (IndexPermissionError, 403, "forbidden"),
    (IntegrityError, 500, "integrity_error"),
    (FeatureBlobError, 500, "corrupt_features"),  # a stored blob is bad: our fault, not the caller's
    (InvalidCIDError, 400, "invalid_cid"),
    (InvalidImageError, 422, "invalid_image"),
    (InvalidMetadataError, 422, "invalid_metadata"),
    (MetadataConflictError, 409, "metadata_conflict"),
    (DuplicateImageError, 409, "duplicate_image"),
    (UnknownPublisherError, 403, "unknown_publisher"),
    (ReplayError, 409, "replayed"),
    (StatementError, 422, "invalid_statement"),
    (KeyEventError, 422, "invalid_key_event"),
    (RevokedKeyError, 403, "key_revoked"),
    (SignatureError, 422, "invalid_signature"),
    (InvalidInputError, 422, "invalid_input"),
    (ConfigError, 500, "config_error"),
    (StoreError, 500, "store_error"),
    (ProvenanceError, 500, "internal_error"),
)

_UNAVAILABLE_PART = {
    "blockstore_unavailable": "block store",
    "chain_unavailable": "chain",
    "database_unavailable": "database",
    "queue_unavailable": "ingest queue",
    "witnesses_unavailable": "witnesses",
}


def status_for(exc: BaseException) -> tuple[int, str]:
    for cls, status, code in ERROR_STATUS:
        if isinstance(exc, cls):
            return status, code
    return 500, "internal_error"


#: Longest error message sent; anything longer is cut (a backstop: quoted input is cut to ECHO_CHARS by ``echo``).
MAX_MESSAGE_CHARS = 1000
ECHO_CHARS = 200


def echo(value: object, limit: int = ECHO_CHARS) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters: errors name what was wrong without
    sending a client's 70 KB parameter back to it."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _bounded(message: str) -> str:
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return f"{message[:MAX_MESSAGE_CHARS]}... (message cut at {MAX_MESSAGE_CHARS} of {len(message)} characters)"


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": _bounded(message), **extra}}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(code, message, **extra), status_code=status, headers=headers)


_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 409: "conflict", 413: "content_too_large", 414: "uri_too_long",
                 415: "unsupported_media_type", 422: "unprocessable", 429: "rate_limited",
                 503: "service_unavailable"}


def _code_for_status(status: int) -> str:
    if status in _STATUS_CODES:
        return _STATUS_CODES[status]
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _http_exception(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return error_response(exc.status_code, _code_for_status(exc.status_code), message, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # "input" may hold raw bytes of an upload: never echo it back.
    details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
               for e in exc.errors()]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"] if p not in ("body", "query", "path", "header"))
    message = f"{where}: {first['msg']}" if where else str(first["msg"])
    return error_response(422, "invalid_request", message, details=details)


async def _provenance_error(_: Request, exc: Exception) -> JSONResponse:
    status, code = status_for(exc)
    message = str(exc) or exc.__class__.__name__
    headers = None
    if isinstance(exc, (QueueFullError, PublisherBacklogError)):  # capacity, not an outage: the message says it
        headers = {"Retry-After": str(max(1, round(exc.retry_after_s)))}
    elif status == 503:
        part = _UNAVAILABLE_PART.get(code, "a service")
        if isinstance(exc, OperationalError):
            message = f"database unavailable: {exc.orig.__class__.__name__ if exc.orig else 'connection failed'}"
        else:
            message = f"{part} unavailable: {message}"
        headers = {"Retry-After": "10"}
    elif status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="provenance"'}
    if status >= 500:
        log.error("api.error", status=status, code=code, error=message, exc_type=exc.__class__.__name__)
        if not isinstance(exc, QueueFullError):  # capacity, not a failure: it has its own 503
            record_error(exc)
    extra = {}
    if isinstance(exc, IngestConflictError):  # 409: name the record the upload conflicts with
        extra = {"record_cid": exc.record_cid, "publisher": exc.publisher_id}
    return error_response(status, code, message, headers, **extra)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("api.unhandled", exc_type=exc.__class__.__name__)
    record_error(exc)
    return error_response(500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ProvenanceError, _provenance_error)
    app.add_exception_handler(OperationalError, _provenance_error)
    app.add_exception_handler(Exception, _unexpected)
