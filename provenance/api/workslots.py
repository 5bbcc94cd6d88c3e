"""Bounded heavy work: how many lookups, byContent hashings and thumbnail renders run at once.

A token bucket counts requests, not work: 300 lookups from 8 connections all passed a 2/s bucket while the machine
served 1/s, and every one waited ~9 s with the load at 8.8. So heavy requests also take a *slot* for as long as
they compute: at most ``total`` over all clients, at most ``per_client`` per client. A client over its share gets
429 at once (it is its own doing); when every slot is busy a request waits up to ``wait_s`` for one, then gets 503.
Both carry Retry-After. Slots are taken after the upload is read, so a slow upload does not hold one.

State is a counter under a lock and waiting is a short asyncio sleep loop: it works from any event loop or thread
(tests run the app in TestClient's portal thread), and a wait costs no thread of the shared pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import AsyncIterator

from provenance.api.errors import ApiError

_POLL_S = 0.05


class WorkSlots:
    def __init__(self, total: int, per_client: int, wait_s: float, *, retry_after_s: float = 2.0) -> None:
        if total < 1 or per_client < 1 or wait_s < 0:
            raise ValueError("total and per_client must be >= 1 and wait_s >= 0")
        self.total = total
        self.per_client = per_client
        self.wait_s = wait_s
        self.retry_after_s = retry_after_s
        self._busy = 0
        self._by_client: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def busy(self) -> int:
        with self._lock:
            return self._busy

    def _try_take(self, client: str) -> str | None:
        """Take a slot: None when taken, "client" or "full" when refused."""
        with self._lock:
            if self._by_client.get(client, 0) >= self.per_client:
                return "client"
            if self._busy >= self.total:
                return "full"
            self._busy += 1
            self._by_client[client] = self._by_client.get(client, 0) + 1
            return None

    def _release(self, client: str) -> None:
        with self._lock:
            self._busy -= 1
            left = self._by_client.get(client, 1) - 1
            if left > 0:
                self._by_client[client] = left
            else:
                self._by_client.pop(client, None)

    def _retry(self) -> str:
        return str(max(1, math.ceil(self.retry_after_s)))

    @contextlib.asynccontextmanager
    async def slot(self, client: str, what: str) -> AsyncIterator[None]:
        """Hold one slot for ``client`` while the block runs (``what`` names the work in the error message)."""
        deadline = time.monotonic() + self.wait_s
        while True:
            refused = self._try_take(client)
            if refused is None:
                break
            if refused == "client":
                raise ApiError(429, "too_many_concurrent",
                               f"{what}: {client} already has {self.per_client} heavy request(s) running; wait for "
                               f"it to finish", headers={"Retry-After": self._retry()})
            if time.monotonic() >= deadline:
                raise ApiError(503, "busy", f"{what}: the server is busy ({self.total} heavy requests running); "
                               f"retry shortly", headers={"Retry-After": self._retry()})
            await asyncio.sleep(_POLL_S)
        try:
            yield
        finally:
            self._release(client)
