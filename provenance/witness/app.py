"""The witness's HTTP face (Starlette): ``POST /add-checkpoint`` of C2SP ``tlog-witness``, and ``GET /`` with the
witness's verifier key. Thin: it reads the body, calls :meth:`Witness.add_checkpoint`, and maps each refusal to its
status code in :data:`REFUSAL_STATUS`, the one table for this app.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from provenance.errors import WitnessError
from provenance.witness.errors import (
    ConsistencyProofError,
    LogSignatureError,
    MalformedRequestError,
    OldSizeMismatchError,
    RootConflictError,
    UnknownLogError,
    WitnessStateError,
)
from provenance.witness.protocol import ADD_CHECKPOINT_PATH, MAX_BODY_BYTES, SIZE_CONTENT_TYPE, encode_size_body
from provenance.witness.service import Witness

__all__ = ["REFUSAL_STATUS", "create_app"]

REFUSAL_STATUS: tuple[tuple[type[WitnessError], int], ...] = (
    (MalformedRequestError, 400),
    (LogSignatureError, 403),
    (UnknownLogError, 404),
    (OldSizeMismatchError, 409),
    (RootConflictError, 409),
    (ConsistencyProofError, 422),
    (WitnessStateError, 500),
)

_TEXT = "text/plain; charset=utf-8"


def _status_for(exc: WitnessError) -> int:
    for cls, status in REFUSAL_STATUS:
        if isinstance(exc, cls):
            return status
    return 500


async def _read_body(request: Request) -> bytes | None:
    """The body, or None when it exceeds :data:`MAX_BODY_BYTES` (checked while it streams)."""
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(witness: Witness) -> Starlette:
    async def add_checkpoint(request: Request) -> Response:
        body = await _read_body(request)
        if body is None:
            return PlainTextResponse(f"request body over {MAX_BODY_BYTES} bytes\n", status_code=413)
        try:
            sigs = await run_in_threadpool(witness.add_checkpoint, body)
        except OldSizeMismatchError as exc:
            # Exactly this content type, without the charset parameter Starlette would add to a text/* media type.
            return Response(encode_size_body(exc.current_size), status_code=409,
                            headers={"content-type": SIZE_CONTENT_TYPE})
        except WitnessError as exc:
            return PlainTextResponse(f"{exc}\n", status_code=_status_for(exc))
        return Response("".join(s.line() for s in sigs), status_code=200, media_type=_TEXT)

    async def index(_: Request) -> Response:
        origins = "".join(f"log {origin}\n" for origin in sorted(witness.logs))
        return PlainTextResponse(f"witness {witness.vkey}\n{origins}")

    return Starlette(routes=[
        Route(ADD_CHECKPOINT_PATH, add_checkpoint, methods=["POST"]),
        Route("/", index, methods=["GET"]),
    ])
