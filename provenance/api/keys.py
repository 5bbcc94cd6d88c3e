"""Publisher API keys: random bearer tokens, shown once; only their SHA-256 is stored. No web framework here:
``provenance.db.create_schema`` imports this module for its table.

A key reads ``prov_<key id>.<secret>``: the key id (16 hex digits, not secret) finds the row, the secret (32 random
bytes, base64url) is what proves possession. The stored value is SHA-256 of the whole key; comparison is
constant-time, and an unknown key id still costs one comparison so timing does not say which ids exist.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Column, DateTime, ForeignKey, String, Table, select
from sqlalchemy.engine import Engine

from provenance.db import metadata, reader
from provenance.errors import ProvenanceError, UnknownPublisherError
from provenance.logging import get_logger
from provenance.records_store import RecordStore  # also registers the publishers table api_keys refers to

log = get_logger(__name__)


class AuthenticationError(ProvenanceError):
    """No API key, or one that is unknown or revoked (HTTP 401)."""


class ForbiddenError(ProvenanceError):
    """The key's publisher may not act on this resource: it belongs to another publisher (HTTP 403)."""


KEY_PREFIX = "prov_"
_KEY_ID_HEX = 16
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("publisher_id", String(64), ForeignKey("publishers.id"), nullable=False, index=True),
    Column("key_sha256", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)


@dataclass(frozen=True)
class ApiKeyInfo:
    key_id: str
    publisher_id: str
    created_at: datetime
    revoked_at: datetime | None


_ready: weakref.WeakSet[Engine] = weakref.WeakSet()
_ready_lock = threading.Lock()


def ensure_api_keys_table(engine: Engine) -> None:
    """Create the ``api_keys`` table if missing (``provenance.db.create_schema`` does too once it imports us)."""
    with _ready_lock:
        if engine not in _ready:
            api_keys.create(engine, checkfirst=True)
            _ready.add(engine)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _split(key: str) -> str | None:
    """The key id of a well-formed key, else None."""
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, dot, secret = key[len(KEY_PREFIX):].partition(".")
    if not dot or len(key_id) != _KEY_ID_HEX or not secret or len(key) > 200:
        return None
    return key_id


def create_api_key(engine: Engine, publisher: str) -> str:
    """A new key for a registered publisher. The returned string is the only copy: store it now."""
    ensure_api_keys_table(engine)
    key_id = secrets.token_hex(_KEY_ID_HEX // 2)
    key = f"{KEY_PREFIX}{key_id}.{secrets.token_urlsafe(32)}"
    with engine.begin() as conn:
        if not RecordStore().has_publisher(conn, publisher):
            raise UnknownPublisherError(f"publisher {publisher!r} is not registered (provenance publishers add)")
        conn.execute(api_keys.insert().values(key_id=key_id, publisher_id=publisher, key_sha256=_digest(key),
                                              created_at=datetime.now(timezone.utc)))
    log.info("api_key.created", publisher=publisher, key_id=key_id)
    return key


def authenticate(engine: Engine, key: str) -> str:
    """The publisher id a valid, unrevoked key belongs to; :class:`AuthenticationError` otherwise."""
    ensure_api_keys_table(engine)
    key_id = _split(key)
    row = None
    if key_id is not None:
        with reader(engine).connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
    stored = row.key_sha256 if row is not None else _DUMMY_HASH
    if not hmac.compare_digest(stored, _digest(key)) or row is None:
        raise AuthenticationError("invalid API key")
    if row.revoked_at is not None:
        raise AuthenticationError(f"API key {key_id} was revoked")
    return str(row.publisher_id)


def revoke_api_key(engine: Engine, key_id: str, *, publisher: str | None = None) -> None:
    """Revoke a key by id (optionally only if it belongs to ``publisher``). Revoking twice is harmless."""
    ensure_api_keys_table(engine)
    query = api_keys.update().where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
    if publisher is not None:
        query = query.where(api_keys.c.publisher_id == publisher)
    with engine.begin() as conn:
        conn.execute(query.values(revoked_at=datetime.now(timezone.utc)))
        exists = conn.execute(select(api_keys.c.publisher_id).where(api_keys.c.key_id == key_id)).first()
    if exists is None or (publisher is not None and exists.publisher_id != publisher):
        raise ProvenanceError(f"no API key {key_id}" + (f" for publisher {publisher!r}" if publisher else ""))
    log.info("api_key.revoked", key_id=key_id)


def list_api_keys(engine: Engine, publisher: str | None = None) -> list[ApiKeyInfo]:
    ensure_api_keys_table(engine)
    query = select(api_keys).order_by(api_keys.c.publisher_id, api_keys.c.created_at)
    if publisher is not None:
        query = query.where(api_keys.c.publisher_id == publisher)
    with reader(engine).connect() as conn:
        return [ApiKeyInfo(r.key_id, r.publisher_id, r.created_at, r.revoked_at) for r in conn.execute(query)]


def issue_api_key_message(engine: Engine, publisher: str) -> str:
    """Create a key for ``publisher`` and return the text to print once (``provenance publishers add``)."""
    key = create_api_key(engine, publisher)
    return (f"API key for {publisher} (shown only now; store it safely):\n  {key}\n"
            f"Send it as 'Authorization: Bearer <key>' to POST /v1/assets and DELETE /v1/records/{{cid}}.")
