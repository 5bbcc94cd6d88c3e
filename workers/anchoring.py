"""Periodic anchoring: the latest checkpoint goes on chain every ``anchor_every_s`` seconds (celery beat), or sooner
once ``anchor_every_records`` records were appended since the last checkpoint (the append task asks for one).

Two guards, both in Redis (the broker), keep anchors from piling up or racing:

* a *trigger* flag (``SET NX``): appends ask for an anchor only when none is queued or running, so thousands of
  appends past the threshold queue one anchor task, not thousands;
* a *lock*: one anchor runs at a time across all workers. ``Ledger.anchor()`` is idempotent per checkpoint (it
  returns a checkpoint already anchored on this chain without a transaction), but two workers anchoring the same
  new checkpoint at once would both send a transaction, and the contract would refuse the second only after it
  cost gas. An anchor that finds the lock taken skips: the one running covers the same records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import redis

from provenance.config import Settings
from provenance.errors import ConfigError
from provenance.ledger import Ledger
from workers.app import safe_url


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    try:
        return redis.Redis.from_url(url)
    except ValueError as exc:
        raise ConfigError(f"anchor coordination needs a Redis broker, not {safe_url(url)}: {exc}") from exc


class AnchorGuard:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = _client(settings.broker_url)
        prefix = "provenance:anchor:" + hashlib.sha256(settings.log_origin.encode()).hexdigest()[:16]
        self.trigger_key = prefix + ":trigger"
        self.lock_key = prefix + ":lock"
        # Long enough for a transaction and its confirmations; a lock left by a killed worker expires after it.
        self.lock_ttl_s = max(60, int(4 * settings.chain_timeout_s * (1 + settings.chain_confirmations)))

    def records_since_checkpoint(self, ledger: Ledger, tree_size: int) -> int:
        with ledger.reader.connect() as conn:
            latest = ledger.store.latest_checkpoint(conn, ledger.config.log_id)
        return tree_size - (latest.tree_size if latest is not None else 0)

    def should_trigger(self, ledger: Ledger, tree_size: int) -> bool:
        """True (once, until the anchor it asks for has run) when enough records wait for an anchor."""
        if self.records_since_checkpoint(ledger, tree_size) < self.settings.anchor_every_records:
            return False
        ttl = max(60, int(self.settings.anchor_every_s))  # if the anchor task were lost, ask again after this
        return bool(self.redis.set(self.trigger_key, tree_size, nx=True, ex=ttl))

    @contextmanager
    def exclusive(self) -> Iterator[bool]:
        """Yields whether this process holds the anchor lock; on exit, releases it and re-arms the trigger."""
        lock = self.redis.lock(self.lock_key, timeout=self.lock_ttl_s, blocking=False)
        held = lock.acquire(blocking=False)
        try:
            yield held
        finally:
            if held:
                self.redis.delete(self.trigger_key)
                try:
                    lock.release()
                except redis.exceptions.LockError:  # expired meanwhile: someone else may hold it now; leave it
                    pass
