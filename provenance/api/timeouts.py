"""Connection and body timeouts: a client that opens connections and sends nothing (or drips a body) must not hold
them forever. A hostile test kept 300 half-open connections open against ``provenance serve``.

* Headers: uvicorn's h11 protocol has a keep-alive timer between requests but no timer before the first request's
  headers, nor while headers drip in. :func:`header_timeout_protocol` makes a subclass of it that closes a
  connection whose request headers are not complete within ``header_timeout_s`` of its opening (or of the first
  byte of a following request). The size of headers is bounded by h11 itself (uvicorn's
  ``h11_max_incomplete_event_size``, 16 KiB by default).
* Bodies: :class:`BodyTimeoutMiddleware` (ASGI, so it holds however the app is served) answers 408 and closes the
  connection when a body stalls for ``idle_s`` between chunks or takes more than ``total_s`` in all.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from provenance.api.errors import error_body


class BodyTimeoutError(StarletteHTTPException):
    """Raised from ``receive``; an HTTPException so that form parsing re-raises it unchanged."""

    def __init__(self, message: str) -> None:
        super().__init__(408, message)


class BodyTimeoutMiddleware:
    def __init__(self, app: ASGIApp, *, idle_s: float, total_s: float) -> None:
        self.app = app
        self.idle_s = idle_s
        self.total_s = total_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at: float | None = None
        body_done = False
        response_started = False

        async def timed_receive() -> Message:
            nonlocal started_at, body_done
            if body_done:  # the body is in; what remains is waiting for a disconnect, which has no deadline
                return await receive()
            now = time.monotonic()
            started_at = now if started_at is None else started_at
            left = self.total_s - (now - started_at)
            idle = left < self.idle_s
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, min(self.idle_s, left)))
            except TimeoutError:
                raise BodyTimeoutError(
                    f"request body not received within {self.total_s:g} s" if idle else
                    f"request body stalled: nothing received for {self.idle_s:g} s") from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, tracking_send)
        except BodyTimeoutError as exc:
            if response_started:
                raise
            body = json.dumps(error_body("request_timeout", str(exc.detail))).encode()
            await send({"type": "http.response.start", "status": 408,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body})


def header_timeout_protocol(header_timeout_s: float) -> type[Any]:
    """A uvicorn h11 protocol class that closes connections whose request headers take longer than
    ``header_timeout_s`` (pass it as ``uvicorn.run(..., http=...)``)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self._header_timer: asyncio.TimerHandle | None = None
            super().connection_made(transport)
            self._arm_header_timer()

        def _awaiting_headers(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            self._header_timer = self.loop.call_later(header_timeout_s, self._header_timed_out)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timed_out(self) -> None:
            self._header_timer = None
            if self._awaiting_headers() and not self.transport.is_closing():
                self.logger.info("Closing a connection whose request headers took over %g s", header_timeout_s)
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self._header_timer is None and self._awaiting_headers():
                self._arm_header_timer()  # first byte of a following request on a kept-alive connection
            super().data_received(data)
            if not self._awaiting_headers():
                self._cancel_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

    return HeaderTimeoutH11Protocol
