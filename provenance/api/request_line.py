"""414 URI Too Long for request lines too long to parse, answered so that the client reads it.

uvicorn's h11 protocol refuses a request head over ``h11_max_incomplete_event_size`` (16 KiB) with a bare 400 and
closes the socket at once; with a long request line still arriving, the client then gets a TCP reset instead of
any answer (a conformance run saw "400 at 6-100 KB, a connection reset with no answer at 200 KB-1 MB" on
``GET /matches/byBinding``, where the C2PA Soft Binding Resolution API specifies 414). :func:`uri_limit_protocol`
makes a subclass of the server's protocol class that watches each request's first line: past ``max_line_bytes``
without a line end it answers ``414`` (the API's JSON error shape, ``Connection: close``), then reads and discards
what the client still sends until its request head ends (up to :data:`DRAIN_BYTES`, for at most :data:`DRAIN_S`)
before closing, so the answer is not lost to a reset. Shorter over-long queries reach the app, whose soft-binding routes answer 414 themselves.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from provenance.api.errors import error_body

#: Longest request line (method, target, version) the server parses; longer ones get 414.
MAX_REQUEST_LINE_BYTES = 8 * 1024
DRAIN_BYTES = 8 * 1024 * 1024
DRAIN_S = 5.0


def _response_414(limit: int) -> bytes:
    body = json.dumps(error_body("uri_too_long", f"the request line is longer than {limit} bytes: send large "
                                 "soft binding values with POST /matches/byBinding")).encode()
    head = (b"HTTP/1.1 414 URI Too Long\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n")
    return head + body


def uri_limit_protocol(base: type[Any], max_line_bytes: int = MAX_REQUEST_LINE_BYTES) -> type[Any]:
    """A subclass of uvicorn's h11 protocol class ``base`` (or of one derived from it) that answers 414 for request
    lines over ``max_line_bytes`` (see the module docstring)."""
    answer = _response_414(max_line_bytes)

    class UriLimitProtocol(base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self._line_bytes = 0  # bytes of the current request line seen so far (no line end yet)
            self._line_done = False  # its line end arrived: the rest is h11's business
            self._drained: int | None = None  # not None: answered 414, discarding what still comes
            super().connection_made(transport)

        def data_received(self, data: bytes) -> None:
            if self._drained is not None:
                self._drain(data)
                return
            if not self._line_done:
                end = data.find(b"\n")
                seen = self._line_bytes + (len(data) if end < 0 else end)
                if seen > max_line_bytes:
                    self._refuse()
                    self._drain(data)
                    return
                if end < 0:
                    self._line_bytes = seen
                else:
                    self._line_done = True
            super().data_received(data)

        def on_response_complete(self) -> None:
            self._line_bytes, self._line_done = 0, False  # the next request on this connection starts a new line
            super().on_response_complete()

        def _refuse(self) -> None:
            self.logger.info("Refusing a request line over %d bytes with 414", max_line_bytes)
            self._drained, self._tail = 0, b""
            self.transport.write(answer)
            self.loop.call_later(DRAIN_S, self.transport.close)

        def _drain(self, data: bytes) -> None:
            """Discard; close once the request's head has ended (all a body-less request sends) or past the caps."""
            assert self._drained is not None
            self._drained += len(data)
            seen, self._tail = self._tail + data, (self._tail + data)[-3:]
            if b"\r\n\r\n" in seen or self._drained > DRAIN_BYTES:
                self.transport.close()

        def eof_received(self) -> Any:
            if self._drained is not None:  # the client sent all it had and read (or not) our answer: done
                self.transport.close()
                return None
            return super().eof_received()

    return UriLimitProtocol
