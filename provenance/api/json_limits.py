"""Bounded JSON from clients: size and nesting depth are checked on the raw bytes *before* any parser sees them.

Why: ``json.loads`` recurses once per nesting level. Importing web3's dependencies raises Python's recursion limit
from 1,000 to 100,000, and at that limit a body like ``{"x": [[[[...]]]]}`` nested 100,000 deep runs the C parser
past the thread's stack: the whole server dies with a segfault from one unauthenticated request. So nothing here
relies on a recursion limit (ours or a dependency's): :func:`check_json` counts bracket depth outside strings with
a regex and a cumulative sum (linear, no recursion) and refuses what is too deep (400) or too large (413).

Every JSON entry point is bounded this way before parsing:

* request bodies FastAPI parses (``Content-Type: application/json`` or ``*/*+json``): :class:`JsonLimitMiddleware`,
  installed once by ``create_app`` for every route, runs :func:`check_json`;
* JSON carried inside a form field (``metadata`` of ``POST /v1/assets``): ``schemas.parse_metadata_json`` checks
  its size and :func:`json_depth` against the metadata schema's own, smaller, bounds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from provenance.api.errors import ApiError, error_body
from provenance.json_bounds import json_depth  # the one depth counter (pure, linear, no recursion)

__all__ = ["JsonLimitMiddleware", "JsonLimits", "check_json", "is_json_content_type", "json_depth"]


@dataclass(frozen=True)
class JsonLimits:
    max_bytes: int
    max_depth: int


def check_json(data: bytes, limits: JsonLimits, *, what: str = "request body") -> None:
    """Refuse ``data`` before parsing: 413 over ``max_bytes``; 400 when not UTF-8 or nested deeper than
    ``max_depth``."""
    if len(data) > limits.max_bytes:
        raise ApiError(413, "json_too_large",
                           f"{what}: JSON of {len(data)} bytes exceeds the limit of {limits.max_bytes} bytes")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_json", f"{what}: JSON must be UTF-8 (invalid byte at {exc.start})") from None
    depth = json_depth(data)
    if depth > limits.max_depth:
        raise ApiError(400, "json_too_deep",
                           f"{what}: JSON nested {depth} levels deep exceeds the limit of {limits.max_depth}")


def is_json_content_type(content_type: str) -> bool:
    """What FastAPI parses as JSON: ``application/json`` or ``application/<anything>+json`` (parameters ignored)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if not media.startswith("application/"):
        return False
    subtype = media[len("application/"):]
    return subtype == "json" or subtype.endswith("+json")


class JsonLimitMiddleware:
    """Reads a JSON request body in full (never more than ``max_bytes``: 413 as soon as it is crossed, or from the
    declared Content-Length), checks it with :func:`check_json`, then hands the same bytes on to the app.

    Only JSON content types are held: FastAPI parses a body as JSON for no other (its strict content-type check,
    which every route keeps; a test checks that), and images must stream untouched."""

    def __init__(self, app: ASGIApp, limits: JsonLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_json_content_type(_header(scope, b"content-type")):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > self.limits.max_bytes:
            await _reject(send, 413, "json_too_large", f"request body: JSON of {int(declared)} bytes exceeds the "
                          f"limit of {self.limits.max_bytes} bytes")
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limits.max_bytes:
                await _reject(send, 413, "json_too_large", f"request body: JSON exceeds the limit of "
                              f"{self.limits.max_bytes} bytes")
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        if body:
            try:
                check_json(body, self.limits)
            except ApiError as exc:
                await _reject(send, exc.status, exc.code, exc.message)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the server would report it

        await self.app(scope, replay, send)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


async def _reject(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps(error_body(code, message)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
