"""API keys (hash-only storage, revocation) and the token-bucket limiter, without HTTP."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from provenance.api.keys import (
    AuthenticationError,
    api_keys,
    authenticate,
    create_api_key,
    issue_api_key_message,
    list_api_keys,
    revoke_api_key,
)
from provenance.api.ratelimit import TokenBucketLimiter
from provenance.errors import UnknownPublisherError
from tests.provenance.api.fakes import FakeService


def test_key_authenticates_its_publisher_and_only_its_hash_is_stored(fake_service: FakeService) -> None:
    engine = fake_service.ledger.engine
    key = create_api_key(engine, "acme")
    assert key.startswith("prov_") and len(key) > 50
    assert authenticate(engine, key) == "acme"
    with engine.connect() as conn:
        rows = conn.execute(select(api_keys)).all()
    assert len(rows) == 1 and rows[0].key_sha256 == hashlib.sha256(key.encode()).hexdigest()
    assert key not in repr(tuple(rows[0]))
    assert create_api_key(engine, "acme") != key  # random each time


@pytest.mark.parametrize("bad", ["", "prov_", "nonsense", "prov_0123456789abcdef.wrong", "Bearer x" * 40])
def test_malformed_or_unknown_keys_are_refused(fake_service: FakeService, bad: str) -> None:
    create_api_key(fake_service.ledger.engine, "acme")
    with pytest.raises(AuthenticationError, match="invalid API key"):
        authenticate(fake_service.ledger.engine, bad)


def test_a_key_with_the_right_id_but_wrong_secret_is_refused(fake_service: FakeService) -> None:
    key = create_api_key(fake_service.ledger.engine, "acme")
    with pytest.raises(AuthenticationError):
        authenticate(fake_service.ledger.engine, key[:-2] + ("AA" if not key.endswith("AA") else "BB"))


def test_revoked_key_is_refused_and_listed_as_revoked(fake_service: FakeService) -> None:
    engine = fake_service.ledger.engine
    key = create_api_key(engine, "acme")
    key_id = key[len("prov_"):].split(".")[0]
    revoke_api_key(engine, key_id)
    with pytest.raises(AuthenticationError, match="revoked"):
        authenticate(engine, key)
    [info] = list_api_keys(engine, "acme")
    assert info.key_id == key_id and info.revoked_at is not None


def test_keys_only_for_registered_publishers(fake_service: FakeService) -> None:
    with pytest.raises(UnknownPublisherError):
        create_api_key(fake_service.ledger.engine, "nobody")


def test_cli_message_shows_the_key_once(fake_service: FakeService) -> None:
    text = issue_api_key_message(fake_service.ledger.engine, "globex")
    key = next(w for w in text.split() if w.startswith("prov_"))
    assert authenticate(fake_service.ledger.engine, key) == "globex"
    assert "Authorization: Bearer" in text


def test_token_bucket_allows_burst_then_refills_per_client() -> None:
    now = [0.0]
    limiter = TokenBucketLimiter(rate_per_s=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)  # empty: one token in 1/rate s
    assert limiter.take("b") == 0.0  # another client has its own bucket
    now[0] += 0.5
    assert limiter.take("a") == 0.0
    now[0] += 100
    assert [limiter.take("a") for _ in range(4)][:3] == [0.0, 0.0, 0.0]  # refills only up to the burst


def test_token_bucket_table_is_bounded() -> None:
    limiter = TokenBucketLimiter(rate_per_s=1.0, burst=1, max_clients=10)
    for i in range(100):
        limiter.take(f"10.0.0.{i}")
    assert len(limiter._buckets) == 10
