"""Uploads: a request-body limit enforced while the body streams in, and image-type sniffing from the bytes.

The limit is an ASGI middleware so that it holds for every route and for every way a body is read (multipart
forms, raw bodies): a declared ``Content-Length`` over the limit is refused before anything is read, and a body
that streams past it is cut off at the first chunk that crosses it. The media type is always taken from the bytes
(magic numbers); what the client declares is only quoted in the error message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from provenance.api.errors import ApiError, error_body
from provenance.c2pa.formats import sniff_media_type

# What the ledger and lookup can decode (provenance.images): anything else is 415, whatever it claims to be.
ACCEPTED_IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif", "image/tiff", "image/bmp")


class UploadTooLargeError(StarletteHTTPException):
    """Raised from ``receive`` when the body crosses the limit; an HTTPException so FastAPI's form parsing
    re-raises it as it is instead of turning it into a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the limit of {limit} bytes")
        self.limit = limit


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _send_413(send, self.max_bytes)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise UploadTooLargeError(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except UploadTooLargeError:
            if started:
                raise
            await _send_413(send, self.max_bytes)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(send: Send, limit: int) -> None:
    import json

    body = json.dumps(error_body("content_too_large", f"request body exceeds the limit of {limit} bytes")).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True)
class ImageUpload:
    data: bytes
    media_type: str  # sniffed from the bytes
    filename: str


def check_image(data: bytes, *, declared: str | None, filename: str, max_image_bytes: int) -> ImageUpload:
    """Refuse what is not an image we can decode (415), empty (422) or over the image byte limit (413)."""
    if not data:
        raise ApiError(422, "invalid_image", f"{filename}: empty file")
    if len(data) > max_image_bytes:
        raise ApiError(413, "content_too_large",
                       f"{filename}: {len(data)} bytes exceeds the image limit of {max_image_bytes} bytes")
    sniffed = sniff_media_type(data)
    if sniffed not in ACCEPTED_IMAGE_TYPES:
        what = f"{sniffed} is not supported" if sniffed else "the bytes are not an image"
        said = f" (declared {declared[:100]})" if declared else ""
        raise ApiError(415, "unsupported_media_type",
                       f"{filename}: {what}{said}; send one of {', '.join(ACCEPTED_IMAGE_TYPES)}")
    return ImageUpload(data=data, media_type=sniffed, filename=filename)


def check_query_image(upload: ImageUpload, config: Any) -> None:
    """The checks every image *query* passes before it may take a work slot (``POST /v1/lookup``,
    ``/matches/byContent``): ``provenance.images.check_query_header`` under the ledger's limits (``config``: its
    ``LedgerConfig``), the header checks of the bounded decode (``decode_query``) that runs later, with the same
    smallest side, so the routes cannot drift apart."""
    from provenance.images import check_query_header

    check_query_header(upload.data, max_bytes=config.max_image_bytes, max_pixels=config.max_image_pixels,
                       name=upload.filename)


async def read_form(request: Request, *, max_fields: int = 4) -> Any:
    """The multipart form of ``request`` (one file at most), parsed only when the handler asks for it, i.e. after
    authentication and rate limiting have passed."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ApiError(415, "unsupported_media_type",
                       f"send multipart/form-data with the image in the field 'file', not {content_type or 'no body'}")
    from provenance.api.forms import parse_multipart  # text fields keep bytes that are not UTF-8 detectable

    return await parse_multipart(request, max_files=1, max_fields=max_fields)


async def form_image(form: Any, *, field: str = "file", max_image_bytes: int) -> ImageUpload:
    upload = form.get(field)
    if not isinstance(upload, UploadFile):
        raise ApiError(422, "invalid_request", f"{field}: an image file is required in the form field '{field}'")
    data = await upload.read()
    return check_image(data, declared=upload.content_type, filename=(upload.filename or field)[:100],
                       max_image_bytes=max_image_bytes)


def multipart_openapi(fields: dict[str, dict[str, Any]], required: list[str]) -> dict[str, Any]:
    """``openapi_extra`` for a route that parses its multipart form itself (so /docs still shows the fields)."""
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": fields, "required": required}}}}}


IMAGE_FIELD = {"type": "string", "format": "binary", "description": "The image (JPEG, PNG, WebP, GIF, TIFF or BMP)."}
