"""Rotating the log's key (docs/key-rotation.md), on a real ledger (SQLite and PostgreSQL, local block store):
checkpoints, attestations, operator key events, receipts and bundles made before and after a rotation verify; the
public audit from tiles follows the rotation; and a forged or tampered rotation, or a checkpoint signed with the
retired key, is named by the audit."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from provenance.audit import audit_ledger
from provenance.auditor.sources import CarBlockSource, DirectoryTileSource
from provenance.auditor.tiles_audit import AuditPolicy, audit_tiles
from provenance.bundle import VerifyPolicy, make_entry, verify_bundle
from provenance.bundle.build import build_bundle
from provenance.cid import cid_for_bytes
from provenance.cli import cli
from provenance.errors import BundleError, CheckpointError, LogKeyChangedError, ServiceEventError
from provenance.hashing import PHashHasher
from provenance.ledger import Ledger
from provenance.lookup_receipts import ReceiptIssuer
from provenance.metadata import PublisherMetadata
from provenance.errors import ReceiptError
from provenance.receipts import ReceiptCheckpoint, service_key_ref, sign_receipt, verify_receipt
from provenance.records import AttestedRecord, parse_record
from provenance.rotation import rotate_log_key
from provenance.service_events import LogKeyChain, log_key_rotation, parse_service_event
from provenance.statements import PublisherStatement, key_id_for, utc_now
from provenance.tlog_tiles import export_tiles
from provenance.translog import Checkpoint, encode_verifier_key, leaf_hash, sign_checkpoint, verify_checkpoint_note
from provenance.translog.checkpoint import parse_checkpoint_note, parse_verifier_key
from provenance.witness.errors import LogSignatureError
from provenance.witness.protocol import AddCheckpointRequest
from provenance.witness.state import evaluate, trusted_logs
from tests.provenance.api.fakes import textured_image


def _ingest(ledger: Ledger, seeds: range) -> list[str]:
    return [ledger.ingest(textured_image(i), publisher="acme", metadata=PublisherMetadata(title=f"photo {i}")).cid
            for i in seeds]


def _vkey(ledger: Ledger, key: Ed25519PrivateKey) -> str:
    return encode_verifier_key(ledger.config.log_key_name, key.public_key())


def _key_file(ledger: Ledger) -> Path:
    return ledger.keyring.root / "service" / f"{ledger.config.log_key_name}.ed25519.pem"


def _checks(report) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.check for f in report.failures}


def _audit(ledger: Ledger):  # type: ignore[no-untyped-def]
    return audit_ledger(ledger, log_public_key=ledger.log_public_key(), anchor=ledger.anchor_backend)


class Rotated:
    """A ledger rotated between two batches of ingests, anchored before and after."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        ledger.hashers = (PHashHasher(),)
        ledger.add_publisher("acme")
        self.before = _ingest(ledger, range(3))
        self.cp_before = ledger.anchor()
        self.old = ledger.log_signing_key()
        self.rotation = rotate_log_key(ledger)
        self.new = ledger.log_signing_key()
        self.after = _ingest(ledger, range(3, 5))
        ledger.add_publisher("beta")  # an operator-signed registration, under the new key
        self.cp_after = ledger.anchor()


@pytest.fixture
def rotated(make_ledger) -> Rotated:  # type: ignore[no-untyped-def]
    return Rotated(make_ledger())


# --- the rotation itself ----------------------------------------------------------------------------------------------
def test_rotation_between_batches_audits_clean_and_every_checkpoint_verifies_under_its_key(rotated: Rotated) -> None:
    ledger, old, new = rotated.ledger, rotated.old, rotated.new
    assert key_id_for(old.public_key()) != key_id_for(new.public_key())
    report = _audit(ledger)
    assert report.ok, report.summary()
    assert report.records == report.records_verified == 5 and report.service_events == 1 and report.pending == 0
    assert [k["vkey"] for k in report.log_keys] == [_vkey(ledger, old), _vkey(ledger, new)]
    assert [a.status for a in report.anchors if a.tree_size in (rotated.cp_before.tree_size,
                                                                rotated.cp_after.tree_size)] == ["verified"] * 2

    name = ledger.config.log_key_name
    verify_checkpoint_note(rotated.cp_before.note, name, old.public_key())
    with pytest.raises(CheckpointError):
        verify_checkpoint_note(rotated.cp_before.note, name, new.public_key())
    verify_checkpoint_note(rotated.cp_after.note, name, new.public_key())
    with pytest.raises(CheckpointError):
        verify_checkpoint_note(rotated.cp_after.note, name, old.public_key())
    # The transition checkpoint (the rotation is its last leaf) carries both signatures.
    with ledger.reader.connect() as conn:
        transition = ledger.store.checkpoint_at(conn, ledger.config.log_id, rotated.rotation.transition_size)
    assert transition is not None and rotated.rotation.transition_size == rotated.rotation.leaf_index + 1
    for key in (old, new):
        verify_checkpoint_note(transition.note, name, key.public_key())

    # Attestations: the first batch under the old key, the second under the new.
    with ledger.reader.connect() as conn:
        attesters = [parse_record(ledger.store.get(conn, cid).record_bytes) for cid in rotated.before + rotated.after]
    assert all(isinstance(r, AttestedRecord) for r in attesters)
    assert [r.attestation.service_key_id for r in attesters] == (  # type: ignore[union-attr]
        [key_id_for(old.public_key())] * 3 + [key_id_for(new.public_key())] * 2)


def test_the_rotation_event_names_both_keys_and_is_signed_by_both(rotated: Rotated) -> None:
    ledger = rotated.ledger
    data = ledger.blockstore.get(rotated.rotation.cid)
    event = parse_service_event(data)
    assert event.kind == "log-key-rotation"
    assert event.old_key.encode() == _vkey(ledger, rotated.old)  # type: ignore[union-attr]
    assert event.new_key.encode() == _vkey(ledger, rotated.new)  # type: ignore[union-attr]
    event.verify_signatures()  # type: ignore[union-attr]
    with ledger.reader.connect() as conn:  # a leaf of the log like any entry
        assert ledger.log.leaf(conn, rotated.rotation.leaf_index) == leaf_hash(rotated.rotation.cid.encode())
    # The retired private key is gone: no key file under keys/ holds it any more.
    old_raw = rotated.old.public_key().public_bytes_raw()
    for path in ledger.keyring.root.rglob("*.pem*"):
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert key.public_key().public_bytes_raw() != old_raw, path  # type: ignore[union-attr]
    assert not _key_file(ledger).with_name(_key_file(ledger).name + ".next").exists()


def test_a_rotation_a_crash_interrupted_is_finished_on_next_use(make_ledger, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ledger = make_ledger()
    ledger.hashers = (PHashHasher(),)
    ledger.add_publisher("acme")
    _ingest(ledger, range(2))
    monkeypatch.setattr(type(ledger.keyring), "commit_service_key", lambda self, name: None)  # "crash" here
    done = rotate_log_key(ledger)
    monkeypatch.undo()
    pending = _key_file(ledger).with_name(_key_file(ledger).name + ".next")
    assert pending.exists()  # the log says the new key is in force, the file is not in place yet
    _ingest(ledger, range(2, 3))  # signing finishes the swap: the new key attests
    assert not pending.exists()
    assert key_id_for(ledger.log_signing_key().public_key()) == done.new.key_id
    ledger.anchor()
    assert _audit(ledger).ok


def test_a_record_attested_by_the_retired_key_is_refused_after_the_rotation(rotated: Rotated) -> None:
    ledger = rotated.ledger
    data = textured_image(50)
    with ledger.reader.connect() as conn:
        template = parse_record(ledger.store.get(conn, rotated.before[0]).record_bytes)
    assert isinstance(template, AttestedRecord)
    publisher_key = ledger.keyring.publisher_key("acme")
    st = PublisherStatement(hashlib.sha256(data).hexdigest(), cid_for_bytes(data), "image/png",
                            PublisherMetadata(title="late"), "acme", key_id_for(publisher_key.public_key()),
                            utc_now()).sign(publisher_key)
    stale = AttestedRecord.attest(st, custody="service", width=160, height=120, byte_size=len(data),
                                  hashes=ledger.hash_image(data), c2pa=None, service_key=rotated.old)
    with pytest.raises(LogKeyChangedError):
        ledger.ingest_signed(stale, data)
    # The normal path attests with the key in force.
    cid = ledger.ingest(data, publisher="acme", metadata=PublisherMetadata(title="late")).cid
    with ledger.reader.connect() as conn:
        rec = parse_record(ledger.store.get(conn, cid).record_bytes)
    assert rec.attestation.service_key_id == key_id_for(rotated.new.public_key())  # type: ignore[union-attr]


# --- what the audit flags --------------------------------------------------------------------------------------------
def _force_append(ledger: Ledger, event) -> str:  # type: ignore[no-untyped-def]
    """Write a service event into the log the way an attacker with the database would: no checks."""
    data = event.to_bytes()
    cid = ledger.blockstore.put(data)
    with ledger.engine.begin() as conn:
        leaf = ledger.log.append(conn, cid)
        ledger.events.insert_service_event(conn, cid, leaf.index, event, data)
    return cid


def test_a_rotation_not_signed_by_the_old_key_is_refused_and_flagged(make_ledger) -> None:  # type: ignore[no-untyped-def]
    ledger = make_ledger()
    ledger.hashers = (PHashHasher(),)
    ledger.add_publisher("acme")
    _ingest(ledger, range(2))
    ledger.anchor()
    genuine = ledger.log_signing_key()
    attacker, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    # It names the genuine key as the old one, but "authorises" with another key.
    honest_form = log_key_rotation(ledger.config.origin, ledger.config.log_key_name, genuine, attacker)
    forged_obj = honest_form.to_obj()
    forged_obj["signatures"]["old"] = log_key_rotation(ledger.config.origin, ledger.config.log_key_name, other,
                                                       attacker).to_obj()["signatures"]["old"]
    forged = parse_service_event(forged_obj)
    chain = ledger.log_key_chain()
    with pytest.raises(Exception, match="old key's authorisation"):
        chain.check(forged, 99)  # type: ignore[arg-type]
    cid = _force_append(ledger, forged)
    report = _audit(ledger)
    assert "logkey.rotation" in _checks(report)
    [finding] = [f for f in report.failures if f.check == "logkey.rotation"]
    assert cid in finding.subject and "old key's authorisation" in finding.message


def test_a_self_consistent_forged_key_history_is_flagged(make_ledger) -> None:  # type: ignore[no-untyped-def]
    ledger = make_ledger()
    ledger.hashers = (PHashHasher(),)
    ledger.add_publisher("acme")
    _ingest(ledger, range(2))
    ledger.anchor()
    a0, a1 = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    _force_append(ledger, log_key_rotation(ledger.config.origin, ledger.config.log_key_name, a0, a1))
    with ledger.engine.begin() as conn:  # and a checkpoint by the attacker's "new" key
        size = ledger.log.size(conn)
        root = ledger.log.root(conn, size)
        ledger.store.add_checkpoint(conn, size, root, sign_checkpoint(
            Checkpoint(ledger.config.origin, size, root), ledger.config.log_key_name, a1))
    report = _audit(ledger)
    assert {"logkey.trust", "checkpoint.signature"} <= _checks(report), report.summary()


def test_a_tampered_rotation_event_is_flagged(rotated: Rotated) -> None:
    ledger = rotated.ledger
    attacker = Ed25519PrivateKey.generate()
    with ledger.engine.begin() as conn:
        raw = conn.execute(text("SELECT event_bytes FROM key_events WHERE cid = :c"),
                           {"c": rotated.rotation.cid}).scalar_one()
        obj = json.loads(bytes(raw))
        obj["new_key"] = {"key_id": key_id_for(attacker.public_key()), "vkey": _vkey(ledger, attacker)}
        forged = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
        conn.execute(text("UPDATE key_events SET event_bytes = :b WHERE cid = :c"),
                     {"b": forged, "c": rotated.rotation.cid})
    report = audit_ledger(ledger, log_public_key=rotated.new.public_key(), anchor=ledger.anchor_backend)
    assert {"service_event.cid", "logkey.rotation", "logkey.trust", "checkpoint.signature"} <= _checks(report), \
        report.summary()


def test_a_checkpoint_signed_with_the_retired_key_after_the_rotation_is_flagged(rotated: Rotated) -> None:
    ledger, old = rotated.ledger, rotated.old
    _ingest(ledger, range(10, 12))
    with ledger.engine.begin() as conn:  # whoever kept the old key signs the next checkpoint with it
        size = ledger.log.size(conn)
        root = ledger.log.root(conn, size)
        ledger.store.add_checkpoint(conn, size, root, sign_checkpoint(
            Checkpoint(ledger.config.origin, size, root), ledger.config.log_key_name, old))
    report = _audit(ledger)
    [finding] = [f for f in report.failures if f.subject == f"checkpoint {size}"]
    assert finding.check == "checkpoint.signature"
    assert "retired by the rotation at leaf" in finding.message and rotated.rotation.cid not in finding.message


def test_the_retired_key_beside_the_new_one_is_flagged_after_the_transition(rotated: Rotated) -> None:
    ledger, old, new = rotated.ledger, rotated.old, rotated.new
    from provenance.rotation import transition_note

    _ingest(ledger, range(20, 21))
    with ledger.engine.begin() as conn:
        size = ledger.log.size(conn)
        root = ledger.log.root(conn, size)
        ledger.store.add_checkpoint(conn, size, root, transition_note(
            Checkpoint(ledger.config.origin, size, root), ledger.config.log_key_name, new, old))
    report = _audit(ledger)
    [finding] = [f for f in report.failures if f.subject == f"checkpoint {size}"]
    assert "also carries a signature by log key" in finding.message


# --- verifiers outside the service -----------------------------------------------------------------------------------
def test_bundles_from_before_and_after_the_rotation_verify_offline(make_ledger) -> None:  # type: ignore[no-untyped-def]
    ledger = make_ledger()
    ledger.hashers = (PHashHasher(),)
    ledger.add_publisher("acme")
    [early] = _ingest(ledger, range(1))
    ledger.checkpoint()
    old = ledger.log_signing_key()
    before = build_bundle(ledger, early)
    assert before is not None and before.log_key == _vkey(ledger, old)
    rotate_log_key(ledger)
    new = ledger.log_signing_key()
    [late] = _ingest(ledger, range(1, 2))
    ledger.checkpoint()
    after, early_now = build_bundle(ledger, late), build_bundle(ledger, early)
    assert after is not None and early_now is not None and after.log_key == _vkey(ledger, new)

    # Made before: verifies under the key of its time (given, or the bundle's own).
    for policy in (VerifyPolicy(log_key=_vkey(ledger, old)), VerifyPolicy()):
        assert verify_bundle(before, image=textured_image(0), policy=policy).log_key_rotations == 0
    # Made after (the new record, and the early one proven in the latest checkpoint): under either key.
    for bundle, image in ((after, textured_image(1)), (early_now, textured_image(0))):
        for key in (old, new):
            report = verify_bundle(bundle, image=image, policy=VerifyPolicy(log_key=_vkey(ledger, key)))
            assert report.log_key_rotations == 1 and report.tree_size == 4
            assert any(c.check == "log_key.history" for c in report.checks)
    # A bundle made before the rotation does not carry it: the new key alone cannot vouch for its checkpoint.
    with pytest.raises(BundleError) as err:
        verify_bundle(before, policy=VerifyPolicy(log_key=_vkey(ledger, new)))
    assert err.value.check == "checkpoint.signature"
    # Through the CLI, offline.
    path = ledger.keyring.root.parent / "after.json"
    path.write_bytes(after.to_json())
    out = CliRunner().invoke(cli, ["verify", str(path), "--log-key", _vkey(ledger, old), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["log_key_rotations"] == 1


def test_a_bundle_whose_rotation_was_forged_fails_its_key_history(rotated: Rotated) -> None:
    ledger = rotated.ledger
    bundle = build_bundle(ledger, rotated.after[0])
    assert bundle is not None

    [i] = [n for n, e in enumerate(bundle.key_events) if e.cid == rotated.rotation.cid]
    entry = bundle.key_events[i]
    obj = json.loads(entry.data)
    obj["signatures"]["old"] = obj["signatures"]["new"]  # not authorised by the old key
    data = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
    forged = make_entry(cid_for_bytes(data), data, entry.index, entry.proof.hashes, entry.proof.checkpoint)
    events = bundle.key_events[:i] + (forged,) + bundle.key_events[i + 1:]
    with pytest.raises(BundleError) as err:
        verify_bundle(replace(bundle, key_events=events), policy=VerifyPolicy(log_key=_vkey(ledger, rotated.old)))
    assert err.value.check == "log_key.history" and "old key's authorisation" in str(err.value)


def test_receipts_signed_before_and_after_verify_under_the_key_of_their_time(rotated: Rotated) -> None:
    ledger = rotated.ledger
    answer = {"verdict": "no_match", "hashes": {"phash": "0f1e2d3c4b5a6978"}, "candidates": []}
    cp = ReceiptCheckpoint(ledger.config.origin, rotated.cp_after.tree_size, rotated.cp_after.root)
    issuer = ReceiptIssuer(ledger, None)
    after = issuer.issue(b"query bytes", answer, cp)
    assert issuer.verifier_key == _vkey(ledger, rotated.new)
    verify_receipt(after.to_bytes(), _vkey(ledger, rotated.new))
    with pytest.raises(ReceiptError):
        verify_receipt(after.to_bytes(), _vkey(ledger, rotated.old))
    # A receipt signed with the old key (as the service did before the rotation) still verifies under it.
    before = sign_receipt(replace(after.receipt, service=service_key_ref(ledger.config.log_key_name, rotated.old)),
                          rotated.old)
    assert verify_receipt(before.to_bytes(), _vkey(ledger, rotated.old)).verdict == "no_match"


def _export(ledger: Ledger, out: Path) -> tuple[Path, Path]:
    tiles, car = out / "tiles", out / "log.car"
    export_tiles(ledger, tiles)
    cids: list[str] = []
    with ledger.reader.connect() as conn:
        for rec in ledger.store.iter_records(conn):
            cids.extend([rec.cid, rec.image_cid])
        cids.extend(ledger.log.record_cid_run(conn, 0, ledger.log.size(conn)))
    ledger.blockstore.export_car(list(dict.fromkeys(cids)), car)
    return tiles, car


def test_the_audit_from_tiles_follows_the_rotation(rotated: Rotated, tmp_path: Path) -> None:
    ledger, old, new = rotated.ledger, rotated.old, rotated.new
    tiles, car = _export(ledger, tmp_path)
    for key in (old, new):  # an auditor who pinned the old key, and one given today's
        report = audit_tiles(DirectoryTileSource(tiles), AuditPolicy(log_key=parse_verifier_key(_vkey(ledger, key))),
                             blocks=CarBlockSource(car))
        assert report.ok, report.summary()
        assert report.log_signature == "verified"
        kinds = [r.kind for r in report.records]
        assert kinds.count("service-event") == 1 and kinds.count("record") == 5
        assert all(r.signature == "verified" for r in report.records), report.summary()
    # Without the blobs the rotation cannot be followed: a pinned old key fails, and says why.
    report = audit_tiles(DirectoryTileSource(tiles), AuditPolicy(log_key=parse_verifier_key(_vkey(ledger, old))))
    assert report.failed_checks == ["checkpoint.signature"] and "--blocks" in report.findings[0].message

    # The published checkpoint re-signed with the retired key alone.
    cp, _sigs = parse_checkpoint_note((tiles / "checkpoint").read_bytes())
    (tiles / "checkpoint").write_text(sign_checkpoint(cp, ledger.config.log_key_name, old))
    report = audit_tiles(DirectoryTileSource(tiles), AuditPolicy(log_key=parse_verifier_key(_vkey(ledger, old))),
                         blocks=CarBlockSource(car))
    assert report.failed_checks == ["checkpoint.signature"] and "retired" in report.findings[0].message


def test_the_audit_from_tiles_flags_a_forged_rotation(make_ledger, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ledger = make_ledger()
    ledger.hashers = (PHashHasher(),)
    ledger.add_publisher("acme")
    _ingest(ledger, range(2))
    genuine = ledger.log_signing_key()
    attacker = Ed25519PrivateKey.generate()
    obj = log_key_rotation(ledger.config.origin, ledger.config.log_key_name, attacker,
                           Ed25519PrivateKey.generate()).to_obj()
    obj["old_key"] = log_key_rotation(ledger.config.origin, ledger.config.log_key_name, genuine,
                                      attacker).to_obj()["old_key"]  # names the genuine key, signed by another
    _force_append(ledger, parse_service_event(obj))
    with ledger.engine.begin() as conn:  # published in a checkpoint of the genuine key
        size = ledger.log.size(conn)
        root = ledger.log.root(conn, size)
        ledger.store.add_checkpoint(conn, size, root, sign_checkpoint(
            Checkpoint(ledger.config.origin, size, root), ledger.config.log_key_name, genuine))
    tiles, car = _export(ledger, tmp_path)
    report = audit_tiles(DirectoryTileSource(tiles), AuditPolicy(log_key=parse_verifier_key(_vkey(ledger, genuine))),
                         blocks=CarBlockSource(car))
    assert "log-key.rotation" in report.failed_checks, report.summary()


def test_a_witness_pinned_to_the_old_key_cosigns_the_transition_then_needs_the_new_key(rotated: Rotated) -> None:
    ledger, old, new = rotated.ledger, rotated.old, rotated.new
    origin = ledger.config.origin
    old_only = trusted_logs([(origin, parse_verifier_key(_vkey(ledger, old)))])
    both = trusted_logs([(origin, parse_verifier_key(_vkey(ledger, k))) for k in (old, new)])
    with ledger.reader.connect() as conn:
        cps = {c.tree_size: c for c in ledger.store.checkpoints(conn, ledger.config.log_id)}
        first, transition, last = rotated.cp_before.tree_size, rotated.rotation.transition_size, \
            rotated.cp_after.tree_size

        def request(old_size: int, size: int) -> AddCheckpointRequest:
            proof = ledger.log.consistency_proof(conn, old_size, size) if 0 < old_size < size else []
            return AddCheckpointRequest(old_size, tuple(proof), cps[size].note)

        heads = {origin: evaluate(old_only, {}, request(0, first)).head}
        heads = {origin: evaluate(old_only, heads, request(first, transition)).head}  # signed by both keys
        with pytest.raises(LogSignatureError):
            evaluate(old_only, heads, request(transition, last))  # the new key alone
        assert evaluate(both, heads, request(transition, last)).head.size == last


def test_a_log_key_chain_refuses_a_rotation_that_brings_back_an_old_key() -> None:
    k0, k1 = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    chain = LogKeyChain.starting_with("o.example/log", "provenance-log", k0.public_key())
    chain.apply(log_key_rotation("o.example/log", "provenance-log", k0, k1), 3)
    with pytest.raises(ServiceEventError, match="already had"):
        chain.apply(log_key_rotation("o.example/log", "provenance-log", k1, k0), 7)
    assert [chain.key_at(n).key.key_id for n in (0, 3, 4, 100)] == [key_id_for(k.public_key())
                                                                    for k in (k0, k0, k1, k1)]


def test_the_cli_rotates_and_the_audit_passes(tmp_path: Path) -> None:
    from provenance.config import Settings
    from provenance.services import open_ledger

    data = tmp_path / "data"
    ledger = open_ledger(Settings(data_dir=data))
    ledger.hashers = (PHashHasher(),)
    ledger.add_publisher("acme")
    _ingest(ledger, range(2))
    ledger.close()
    runner = CliRunner()
    before = runner.invoke(cli, ["--data-dir", str(data), "log", "key"]).stdout.strip()
    out = runner.invoke(cli, ["--data-dir", str(data), "log", "rotate-key", "--json"])
    assert out.exit_code == 0, out.output
    done = json.loads(out.stdout)
    assert done["old_key"] == before and done["new_key"] != before
    assert runner.invoke(cli, ["--data-dir", str(data), "log", "key"]).stdout.strip() == done["new_key"]
    history = json.loads(runner.invoke(cli, ["--data-dir", str(data), "log", "key-history", "--json"]).stdout)
    assert [h["vkey"] for h in history] == [before, done["new_key"]]
    assert history[1]["from_leaf"] == done["leaf_index"]
    audit = runner.invoke(cli, ["--data-dir", str(data), "audit", "--json"])
    assert audit.exit_code == 0, audit.output
    assert json.loads(audit.stdout)["service_events"] == 1
