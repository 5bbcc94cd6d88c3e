"""Publisher-held keys (issue 14): statements signed on the publisher's side, the service's attestation, key events
in the log, and every bad vector of the issue refused with nothing written. The operator's keyring cannot make a
record that ``audit`` accepts for a publisher-custody publisher."""

from __future__ import annotations

import dataclasses
import io
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from provenance import keyevents
from provenance.audit import audit_ledger
from provenance.client.statement import build_statement
from provenance.errors import (
    KeyEventError,
    ReplayError,
    RevokedKeyError,
    SignatureError,
    StatementError,
)
from provenance.records import AttestedRecord, PerceptualHash, PublisherMetadata, parse_record
from provenance.records_store import StoredRecord
from provenance.statements import key_id_for

META = PublisherMetadata(title="Harbour at dawn", licence="CC-BY-4.0")
# Perceptual hashes are the service's business and not what these tests are about: fixed codes keep them fast.
HASHES = (PerceptualHash("phash", "phash-v1", 64, "0f" * 8),)


def _png(seed: int) -> bytes:
    img = Image.effect_noise((64, 48), 30 + seed).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _size(ledger) -> int:  # type: ignore[no-untyped-def]
    with ledger.reader.connect() as conn:
        return ledger.log.size(conn)


def _records(ledger) -> int:  # type: ignore[no-untyped-def]
    with ledger.reader.connect() as conn:
        return ledger.store.count(conn)


def _audit(ledger, **kw):  # type: ignore[no-untyped-def]
    return audit_ledger(ledger, log_public_key=ledger.log_public_key(), anchor=None, **kw)


@pytest.fixture
def newsroom(make_ledger):  # type: ignore[no-untyped-def]
    """A ledger with 'herald' in publisher custody (its private key never reaches the service) and 'acme' custodial."""
    ledger = make_ledger()
    key = Ed25519PrivateKey.generate()
    ledger.add_publisher("herald", key.public_key())
    ledger.add_publisher("acme")
    return ledger, key


def _submit(ledger, key, data, publisher="herald", **kw):  # type: ignore[no-untyped-def]
    st = build_statement(data, publisher=publisher, key=key, metadata=META, **kw)
    return ledger.ingest(data, publisher=publisher, metadata=META, hashes=HASHES, statement=st), st


def test_publisher_custody_record_carries_both_signatures_and_audits(newsroom) -> None:  # type: ignore[no-untyped-def]
    ledger, key = newsroom
    assert ledger.custody("herald") == "publisher" and ledger.custody("acme") == "service"
    assert not (ledger.keyring.root / "publishers" / "herald.ed25519.pem").exists()  # no private key stored
    result, st = _submit(ledger, key, _png(1))
    rec = parse_record(ledger.blockstore.get(result.cid))
    assert isinstance(rec, AttestedRecord) and rec.custody == "publisher"
    assert rec.statement == st and rec.record.metadata == META
    rec.verify(key.public_key())
    rec.verify_attestation(ledger.log_public_key())
    assert rec.attestation.statement_sha256 == st.digest and rec.record.hashes == HASHES
    custodial = ledger.ingest(_png(2), publisher="acme", metadata=META, hashes=HASHES)
    assert parse_record(ledger.blockstore.get(custodial.cid)).custody == "service"
    ledger.checkpoint()
    report = _audit(ledger)
    assert report.ok, report.summary()
    assert report.publishers == {"herald": {"custody": "publisher", "keys": 1},
                                 "acme": {"custody": "service", "keys": 1}}
    assert report.key_events == 2 and report.records == 2 and report.records_verified == 2


def test_publisher_custody_upload_needs_a_statement(newsroom) -> None:  # type: ignore[no-untyped-def]
    ledger, _ = newsroom
    before = _size(ledger)
    with pytest.raises(StatementError, match="holds its own key"):
        ledger.ingest(_png(1), publisher="herald", metadata=META, hashes=HASHES)
    assert _size(ledger) == before


def test_bad_statement_signed_by_another_publishers_key(newsroom) -> None:  # type: ignore[no-untyped-def]
    ledger, _ = newsroom
    other = Ed25519PrivateKey.generate()
    ledger.add_publisher("rival", other.public_key())
    before, data = _size(ledger), _png(1)
    # rival signs a statement in herald's name (naming its own key): the key is not herald's
    with pytest.raises(KeyEventError, match="never registered to publisher 'herald'"):
        _submit(ledger, other, data)
    # a statement that claims herald's key id but carries rival's signature
    st = build_statement(data, publisher="rival", key=other, metadata=META).statement
    forged_st = dataclasses.replace(st, publisher_id="herald",
                                    key_id=ledger.key_history().keys["herald"].popitem()[0])
    from provenance.statements import STATEMENT_DOMAIN, SignedStatement, sign_domain

    forged = SignedStatement(forged_st, sign_domain(STATEMENT_DOMAIN, forged_st.body(), other))
    with pytest.raises(SignatureError, match="does not verify"):
        ledger.ingest(data, publisher="herald", metadata=META, hashes=HASHES, statement=forged)
    assert _size(ledger) == before and not ledger.blockstore.has(st.image_cid)


def test_bad_statement_for_another_image(newsroom) -> None:  # type: ignore[no-untyped-def]
    ledger, key = newsroom
    st = build_statement(_png(1), publisher="herald", key=key, metadata=META)
    before = _size(ledger)
    with pytest.raises(StatementError, match="names another image"):
        ledger.ingest(_png(2), publisher="herald", metadata=META, hashes=HASHES, statement=st)
    assert _size(ledger) == before and _records(ledger) == 0


def test_bad_statement_for_another_publishers_upload(newsroom) -> None:  # type: ignore[no-untyped-def]
    ledger, key = newsroom
    st = build_statement(_png(1), publisher="herald", key=key, metadata=META)
    with pytest.raises(StatementError, match="the upload is 'acme'"):
        ledger.check_statement(st, _png(1), publisher="acme")


def test_bad_statement_replayed(newsroom) -> None:  # type: ignore[no-untyped-def]
    ledger, key = newsroom
    data = _png(1)
    result, st = _submit(ledger, key, data)
    # the record is withdrawn; replaying its statement must not bring it back under a new record
    ledger.append_key_event(keyevents.withdrawal("herald", result.cid, key))
    with ledger.engine.begin() as conn:  # even with the first record's row gone, the statement's use is on file
        assert ledger.events.statement_use(conn, st.digest) == result.cid
    with pytest.raises(ReplayError, match="already used"):
        ledger.check_statement(st, data, publisher="herald")


def test_bad_statement_stale_or_from_the_future(newsroom) -> None:  # type: ignore[no-untyped-def]
    ledger, key = newsroom
    data = _png(1)
    for delta in (timedelta(hours=-2), timedelta(hours=2)):
        when = (datetime.now(timezone.utc) + delta).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        st = build_statement(data, publisher="herald", key=key, metadata=META, issued_at=when)
        with pytest.raises(StatementError, match="allowed"):
            ledger.check_statement(st, data, publisher="herald")


def test_revoked_key_is_refused_at_ingest_and_flagged_by_audit(newsroom) -> None:  # type: ignore[no-untyped-def]
    ledger, key = newsroom
    _submit(ledger, key, _png(1))
    ledger.append_key_event(keyevents.revocation("herald", key_id_for(key.public_key()), key, reason="laptop stolen"))
    before = _size(ledger)
    with pytest.raises(RevokedKeyError, match="revoked"):
        _submit(ledger, key, _png(2))
    assert _size(ledger) == before
    # A record slipped in after the revocation (as a dishonest or buggy server might) is flagged by audit.
    data = _png(3)
    st = build_statement(data, publisher="herald", key=key, metadata=META)
    rec = AttestedRecord.attest(st, custody="publisher", width=64, height=48, byte_size=len(data), hashes=HASHES,
                                c2pa=None, service_key=ledger.keyring.service_key(ledger.config.log_key_name))
    _write_behind_the_ledgers_back(ledger, rec, data)
    report = _audit(ledger)
    assert [f.check for f in report.failures] == ["record.revoked"]


def test_rotation_by_old_key_and_bad_rotation(newsroom) -> None:  # type: ignore[no-untyped-def]
    ledger, old = newsroom
    new = Ed25519PrivateKey.generate()
    stranger = Ed25519PrivateKey.generate()
    before = _size(ledger)
    # a rotation not signed by the old key: the stranger signs it, claiming to be herald's old key
    bad = keyevents.make_event("key-rotation", "herald", stranger, role="publisher",
                               old_key_id=key_id_for(old.public_key()),
                               key=keyevents.public_key_obj(new.public_key()), custody="publisher",
                               authority="previous-key")
    with pytest.raises(KeyEventError, match="not a key of publisher 'herald'"):
        ledger.append_key_event(bad)
    assert _size(ledger) == before
    ledger.append_key_event(keyevents.rotation("herald", key_id_for(old.public_key()), new.public_key(),
                                               "publisher", old))
    with pytest.raises(RevokedKeyError, match="rotated away"):
        _submit(ledger, old, _png(1))
    _submit(ledger, new, _png(2))
    ledger.checkpoint()
    assert _audit(ledger).ok


def test_withdrawal_by_a_non_owner_is_refused(newsroom) -> None:  # type: ignore[no-untyped-def]
    ledger, key = newsroom
    result, _ = _submit(ledger, key, _png(1))
    acme_key = ledger.keyring.publisher_key("acme")
    before = _size(ledger)
    with pytest.raises(KeyEventError, match="belongs to 'herald', not 'acme'"):
        ledger.withdraw(result.cid, "acme", keyevents.withdrawal("acme", result.cid, acme_key))
    with pytest.raises(SignatureError, match="holds its own key"):
        ledger.withdraw(result.cid, "herald")  # the service cannot withdraw for a publisher-custody publisher
    assert _size(ledger) == before and ledger.withdrawal(result.cid) is None
    cid = ledger.withdraw(result.cid, "herald", keyevents.withdrawal("herald", result.cid, key, reason="wrong"))
    stored = ledger.withdrawal(result.cid)
    assert stored is not None and stored.cid == cid and stored.event.body["reason"] == "wrong"
    ledger.checkpoint()
    report = _audit(ledger)
    assert report.ok and report.withdrawn == 1 and report.records_verified == 1  # still auditable


def test_operator_keyring_cannot_forge_a_publisher_custody_record(newsroom) -> None:  # type: ignore[no-untyped-def]
    """Everything the operator holds (the service key, every custodial key) fails to make a herald record that
    audit accepts: signing in herald's name does not verify, and a key installed on the operator's authority
    taints every record it signs."""
    ledger, _ = newsroom
    operator = ledger.keyring.service_key(ledger.config.log_key_name)
    herald_key_id = next(iter(ledger.key_history().keys["herald"]))
    data = _png(5)
    st = build_statement(data, publisher="herald", key=operator, metadata=META).statement
    forged_st = dataclasses.replace(st, key_id=herald_key_id)
    from provenance.statements import STATEMENT_DOMAIN, SignedStatement, sign_domain

    for signer in (operator, ledger.keyring.publisher_key("acme")):
        forged = SignedStatement(forged_st, sign_domain(STATEMENT_DOMAIN, forged_st.body(), signer))
        with pytest.raises(SignatureError):
            ledger.ingest(data, publisher="herald", metadata=META, hashes=HASHES, statement=forged)
    assert _records(ledger) == 0
    # Written straight into the database and the log, skipping every check: audit catches it.
    forged = SignedStatement(forged_st, sign_domain(STATEMENT_DOMAIN, forged_st.body(), operator))
    rec = AttestedRecord.attest(forged, custody="publisher", width=64, height=48, byte_size=len(data),
                                hashes=HASHES, c2pa=None, service_key=operator)
    _write_behind_the_ledgers_back(ledger, rec, data)
    assert {f.check for f in _audit(ledger).failures} == {"record.signature"}
    # The operator's one lever: install a key for herald ("lost key") and sign with it. Visible, and refused.
    planted = Ed25519PrivateKey.generate()
    ledger.append_key_event(keyevents.rotation("herald", herald_key_id, planted.public_key(), "publisher", operator,
                                               by_operator=True))
    _submit(ledger, planted, _png(6))
    report = _audit(ledger)
    assert {f.check for f in report.failures} == {"record.signature", "record.operator_key"}
    assert {f.check for f in _audit(ledger, trust_operator_rotations=True).failures} == {"record.signature"}


def test_key_history_replays_only_what_was_signed_by_who_must_sign() -> None:
    operator, pub_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    history = keyevents.KeyHistory(operator.public_key())
    with pytest.raises(KeyEventError, match="not a key of publisher"):  # self-registration is not allowed
        history.apply(keyevents.make_event("key-registration", "p", pub_key, role="publisher",
                                           key=keyevents.public_key_obj(pub_key.public_key()), custody="publisher"), 0)
    history.apply(keyevents.registration("p", pub_key.public_key(), "publisher", operator), 0)
    assert history.check_signer("p", key_id_for(pub_key.public_key()), 1).custody == "publisher"
    with pytest.raises(KeyEventError, match="already registered"):
        history.apply(keyevents.registration("p", pub_key.public_key(), "publisher", operator), 1)
    rev = keyevents.revocation("p", key_id_for(pub_key.public_key()), pub_key, revoked_at="2026-01-01T00:00:00Z")
    history.apply(rev, 2)
    with pytest.raises(RevokedKeyError):
        history.check_signer("p", key_id_for(pub_key.public_key()), 3)
    # signed before the revocation's time but appended before the revocation leaf: still fine
    assert history.check_signer("p", key_id_for(pub_key.public_key()), 2, signed_at="2025-12-31T23:59:59Z")
    with pytest.raises(RevokedKeyError, match="after its revocation time"):  # backdated revocation catches it
        history.check_signer("p", key_id_for(pub_key.public_key()), 2, signed_at="2026-01-02T00:00:00Z")


def test_key_event_parsing_refuses_malformed_events() -> None:
    key = Ed25519PrivateKey.generate()
    good = keyevents.withdrawal("p", "bafkreiexample", key).to_obj()
    for name, mutate in [("extra field", lambda o: o.update(extra=1)),
                         ("missing field", lambda o: o.pop("reason")),
                         ("bad kind", lambda o: o.update(event="key-theft")),
                         ("bad time", lambda o: o.update(issued_at="yesterday")),
                         ("bad signer", lambda o: o.update(signer={"role": "god", "key_id": "x"}))]:
        obj = dict(good)
        mutate(obj)
        with pytest.raises(KeyEventError):
            keyevents.KeyEvent.from_obj(obj)
    tampered = keyevents.KeyEvent.from_obj({**good, "reason": "changed after signing"})
    with pytest.raises(SignatureError):
        tampered.verify_signature(key.public_key())


def _write_behind_the_ledgers_back(ledger, rec: AttestedRecord, data: bytes) -> None:  # type: ignore[no-untyped-def]
    """What a dishonest operator with database access could do: skip every ingest check."""
    ledger.blockstore.put(data)
    ledger.blockstore.put(rec.to_bytes())
    with ledger.engine.begin() as conn:
        leaf = ledger.log.append(conn, rec.cid)
        r = rec.record
        ledger.store.insert_record(conn, StoredRecord(rec.cid, r.publisher_id, r.image_sha256, r.image_cid,
                                                      rec.to_bytes(), leaf.index), datetime.now(timezone.utc))
