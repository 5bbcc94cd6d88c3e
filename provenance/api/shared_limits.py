"""Limits that hold across API replicas: the lookup and image token buckets and the per-client heavy-work slots, kept
in Redis so that N ``provenance serve`` processes give one client one budget (docs/limits.md).

Where: ``PROVENANCE_RATE_LIMIT_REDIS_URL`` (``Settings.shared_limits_url``); by default the Celery broker's Redis when
``PROVENANCE_QUEUE=celery``, and the in-memory versions (``ratelimit.py``, ``workslots.py``) otherwise.

* **Token bucket**: one Lua script per take, so reading the bucket, refilling it and taking from it is atomic however
  many replicas ask at once. Time is Redis's own clock (``TIME``), so replicas' clocks never disagree about a
  bucket. A bucket expires once it would be full again: idle clients cost nothing.
* **Work slots**: each slot a client holds is a member of a sorted set per client, scored with the time its lease
  ends. Taking one drops expired members first, so a replica that crashed while holding slots cannot leak them for
  longer than a lease (30 s). A live request renews its lease every 10 s while it runs. Only the *per-client* share
  is shared: the overall bound (``PROVENANCE_API_HEAVY_CONCURRENCY``) bounds one process's memory and CPU and stays
  per replica.
* **Redis down**: limits fall back to the in-memory versions of this process (still bounded, per replica), with a
  warning; Redis is tried again after a few seconds. Lookups keep working when the broker is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from provenance.api.errors import ApiError
from provenance.api.ratelimit import TokenBucketLimiter
from provenance.api.workslots import _POLL_S, WorkSlots
from provenance.config import Settings
from provenance.logging import get_logger

log = get_logger(__name__)

__all__ = ["SharedLimits", "SharedTokenBucket", "SharedWorkSlots", "open_shared_limits", "token_bucket",
           "work_slots"]

KEY_PREFIX = "provenance:limits"
LEASE_S = 30.0
RENEW_EVERY_S = 10.0
RETRY_REDIS_AFTER_S = 5.0

# KEYS[1]: the bucket (a hash: tokens, at). ARGV: rate per second, burst, cost. Returns the wait in seconds (0: taken)
# as a string (Redis would truncate a Lua number to an integer).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil or at == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= cost then tokens = tokens - cost else wait = (cost - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return string.format('%.6f', wait)
"""

# KEYS[1]: the client's slots (a sorted set: ticket -> lease end, ms). ARGV: ticket, per-client limit, lease (ms).
# Returns 1 when the slot was taken, 0 when the client holds its share already.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""

# KEYS[1], ARGV[1]: ticket, ARGV[2]: lease (ms). Extends a held slot's lease (and the set's expiry).
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local renewed = redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return renewed
"""


class SharedLimits:
    """One Redis connection pool and the limit scripts; ``available`` is False for a few seconds after a failure
    (then the in-memory fallbacks answer without waiting on a dead server)."""

    def __init__(self, client: Any, *, prefix: str = KEY_PREFIX, where: str = "redis") -> None:
        self.client = client
        self.prefix = prefix
        self.where = where
        self._take = client.register_script(_TAKE)
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._down_until = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> SharedLimits:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5,
                                      health_check_interval=30)
        return cls(client, where=_without_password(url))

    def key(self, kind: str, client: str) -> str:
        return f"{self.prefix}:{kind}:{client}"

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def failed(self, exc: BaseException) -> None:
        """Remember an outage: fall back for a few seconds, and say so once per outage."""
        with self._lock:
            first = self.available
            self._down_until = time.monotonic() + RETRY_REDIS_AFTER_S
        if first:
            log.warning("limits.redis_unavailable", where=self.where, error=f"{type(exc).__name__}: {exc}",
                        fallback="in-memory limits of this process")

    def call(self, what: Callable[[], Any]) -> Any:
        """Run one Redis call; raise ``_Unavailable`` (after noting the outage) when Redis cannot answer."""
        import redis

        if not self.available:
            raise _Unavailable()
        try:
            return what()
        except (redis.RedisError, OSError) as exc:
            self.failed(exc)
            raise _Unavailable() from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()


def _without_password(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class _Unavailable(Exception):
    """Redis could not answer: use this process's in-memory limit instead."""


class SharedTokenBucket(TokenBucketLimiter):
    """A token bucket per client in Redis, shared by every replica; the in-memory bucket it extends answers while
    Redis is down."""

    def __init__(self, shared: SharedLimits, name: str, rate_per_s: float, burst: int) -> None:
        super().__init__(rate_per_s, burst)
        self.shared = shared
        self.name = name

    def take(self, client: str, cost: float = 1.0) -> float:
        key = self.shared.key(self.name, client)
        try:
            wait = self.shared.call(lambda: self.shared._take(keys=[key], args=[self.rate_per_s, self.burst, cost]))
        except _Unavailable:
            return super().take(client, cost)
        return float(wait)


class SharedWorkSlots(WorkSlots):
    """Heavy-work slots whose per-client share is counted in Redis (across replicas); the overall bound stays this
    process's. While Redis is down, the in-memory slots it extends answer."""

    def __init__(self, shared: SharedLimits, total: int, per_client: int, wait_s: float, *,
                 lease_s: float = LEASE_S, renew_every_s: float = RENEW_EVERY_S) -> None:
        super().__init__(total, per_client, wait_s)
        self.shared = shared
        self.lease_ms = max(1, int(lease_s * 1000))
        self.renew_every_s = renew_every_s

    def _take_global(self) -> bool:
        with self._lock:
            if self._busy >= self.total:
                return False
            self._busy += 1
            return True

    def _release_global(self) -> None:
        with self._lock:
            self._busy -= 1

    def _acquire(self, key: str, ticket: str) -> bool:
        return bool(self.shared.call(lambda: self.shared._acquire(keys=[key], args=[ticket, self.per_client,
                                                                                      self.lease_ms])))

    def _release_shared(self, key: str, ticket: str) -> None:
        with contextlib.suppress(_Unavailable):
            self.shared.call(lambda: self.shared.client.zrem(key, ticket))

    async def _renew(self, key: str, ticket: str) -> None:
        while True:
            await asyncio.sleep(self.renew_every_s)
            with contextlib.suppress(_Unavailable):
                await asyncio.to_thread(self.shared.call, lambda: self.shared._renew(keys=[key],
                                                                                      args=[ticket, self.lease_ms]))

    @contextlib.asynccontextmanager
    async def slot(self, client: str, what: str) -> AsyncIterator[None]:
        key, ticket = self.shared.key("slots", client), uuid.uuid4().hex
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                taken = await asyncio.to_thread(self._acquire, key, ticket)
            except _Unavailable:
                async with super().slot(client, what):
                    yield
                return
            if not taken:
                raise ApiError(429, "too_many_concurrent",
                               f"{what}: {client} already has {self.per_client} heavy request(s) running; wait for "
                               f"it to finish", headers={"Retry-After": self._retry()})
            if self._take_global():
                break
            await asyncio.to_thread(self._release_shared, key, ticket)  # not held while this replica is full
            if time.monotonic() >= deadline:
                raise ApiError(503, "busy", f"{what}: the server is busy ({self.total} heavy requests running); "
                               f"retry shortly", headers={"Retry-After": self._retry()})
            await asyncio.sleep(_POLL_S)
        renewer = asyncio.create_task(self._renew(key, ticket))
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            self._release_global()
            await asyncio.to_thread(self._release_shared, key, ticket)


# --- what the app builds ------------------------------------------------------------------------------------------
def open_shared_limits(settings: Settings) -> SharedLimits | None:
    """The shared store of ``settings`` (None: in-memory limits). Nothing is contacted here: a Redis that is down
    at start only means in-memory limits until it answers."""
    url = settings.shared_limits_url
    return SharedLimits.from_url(url) if url else None


def token_bucket(name: str, rate_per_s: float, burst: int, shared: SharedLimits | None) -> TokenBucketLimiter:
    return TokenBucketLimiter(rate_per_s, burst) if shared is None else SharedTokenBucket(shared, name, rate_per_s,
                                                                                          burst)


def work_slots(settings: Settings, shared: SharedLimits | None) -> WorkSlots:
    s = settings
    if shared is None:
        return WorkSlots(s.api_heavy_concurrency, s.api_heavy_per_client, s.api_heavy_wait_s)
    return SharedWorkSlots(shared, s.api_heavy_concurrency, s.api_heavy_per_client, s.api_heavy_wait_s)

