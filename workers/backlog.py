"""How many uploads each publisher has waiting in the Celery queue, counted in the broker's Redis so that every API
replica sees the same number (``PROVENANCE_INGEST_MAX_PENDING_PER_PUBLISHER``; beyond it, 429 with Retry-After).

Each accepted upload is a member of a sorted set per publisher (its ingest id, scored with the time it was accepted).
Reserving is one Lua script (drop members older than the lease, count, add), so two replicas can never both take
the last place. Members leave when their ingest has finished: the workers need not know about this count, because
a publisher found at its limit has its members' statuses read from the result backend (one ``MGET``) and the
finished ones removed, then reserving is tried once more. A member whose status never appears (a replica died
between reserving and queueing) is dropped after a minute, and every member after the lease (the broker's
visibility timeout), so nothing leaks for long.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from workers.errors import PublisherBacklogError

__all__ = ["PublisherBacklog"]

KEY_PREFIX = "provenance:pending"
UNQUEUED_GRACE_S = 60.0

# KEYS[1]: the publisher's set. ARGV: ingest id, limit, lease (ms). 1: reserved; 0: at the limit.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""


class PublisherBacklog:
    """``statuses(ids)`` gives each ingest's status (``workers.status.load_statuses``: None when unknown)."""

    def __init__(self, client: Any, limit: int, lease_s: float,
                 statuses: Callable[[list[str]], dict[str, Any]], *, prefix: str = KEY_PREFIX) -> None:
        self.client = client
        self.limit = limit
        self.lease_ms = max(1000, int(lease_s * 1000))
        self.statuses = statuses
        self.prefix = prefix
        self._reserve = client.register_script(_RESERVE)

    def key(self, publisher: str) -> str:
        return f"{self.prefix}:{publisher}"

    def reserve(self, publisher: str, ingest_id: str) -> None:
        """Count ``ingest_id`` as waiting for ``publisher``, or raise PublisherBacklogError at the limit."""
        key = self.key(publisher)
        if self._try(key, ingest_id):
            return
        self._drop_finished(key)
        if self._try(key, ingest_id):
            return
        raise PublisherBacklogError(f"publisher {publisher!r} already has {self.limit} uploads waiting to be "
                                    f"ingested (at most {self.limit}); retry once some have finished",
                                    limit=self.limit)

    def release(self, publisher: str, ingest_id: str) -> None:
        """Forget a reservation whose upload was not queued after all."""
        self.client.zrem(self.key(publisher), ingest_id)

    def waiting(self, publisher: str) -> int:
        return int(self.client.zcard(self.key(publisher)))

    def _try(self, key: str, ingest_id: str) -> bool:
        return bool(self._reserve(keys=[key], args=[ingest_id, self.limit, self.lease_ms]))

    def _drop_finished(self, key: str) -> None:
        members = self.client.zrange(key, 0, -1, withscores=True)
        if not members:
            return
        ids = [m.decode() if isinstance(m, bytes) else str(m) for m, _ in members]
        found = self.statuses(ids)
        now_ms = time.time() * 1000
        gone = []
        for ingest_id, (_, score) in zip(ids, members):
            st = found.get(ingest_id)
            if (st is not None and st.finished) or (st is None and now_ms - score > UNQUEUED_GRACE_S * 1000):
                gone.append(ingest_id)
        if gone:
            self.client.zrem(key, *gone)
