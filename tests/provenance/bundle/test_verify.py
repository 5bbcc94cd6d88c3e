"""verify_bundle, pure: honest bundles from a real ledger pass; each named bad vector fails with the check that
names it, through the function and through ``provenance verify`` (exit 1, nothing written)."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from provenance import keyevents
from provenance.bundle import (TLOG_PROOF_HEADER, TOFU, LogEntry, ProofBundle, VerifyPolicy, parse_tlog_proof,
                               verify_bundle)
from provenance.bundle.chain import verify_anchor_on_chain
from provenance.cli import cli
from provenance.errors import BundleError
from provenance.records import AttestedRecord, PerceptualHash, parse_record
from provenance.statements import key_id_for
from provenance.translog import leaf_hash, parse_checkpoint_note, record_leaf_data, root_from_inclusion_proof
from provenance.translog.checkpoint import parse_note, sign_note
from provenance.translog.cosignature import WitnessSigner, add_cosignatures
from tests.fixtures.services import free_port
from tests.provenance.bundle.conftest import HASHES, Operator, World, png, statement


def fails(bundle: ProofBundle | bytes, check: str, tmp_path: Path, *, image: bytes | None = None,
          policy: VerifyPolicy = VerifyPolicy(), cli_args: tuple[str, ...] = ()) -> str:
    """The named check fails in verify_bundle and in `provenance verify` (exit 1, named, no file written)."""
    data = bundle.to_json() if isinstance(bundle, ProofBundle) else bundle
    with pytest.raises(BundleError) as err:
        verify_bundle(ProofBundle.from_json(data), image=image, policy=policy)
    assert err.value.check == check, str(err.value)
    run = tmp_path / "run"
    run.mkdir(parents=True)
    (run / "b.json").write_bytes(data)
    args = ["verify", str(run / "b.json"), *cli_args]
    if image is not None:
        (run / "image.png").write_bytes(image)
        args += ["--image", str(run / "image.png")]
    if policy.log_key:
        args += ["--log-key", policy.log_key]
    before = sorted(p.name for p in run.iterdir())
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert f"FAILED ({check})" in result.stderr
    as_json = CliRunner().invoke(cli, [*args, "--json"])
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["check"] == check
    assert sorted(p.name for p in run.iterdir()) == before  # nothing written
    return str(err.value)


def replace_entry(entry: LogEntry, **changes: object) -> LogEntry:
    proof = dataclasses.replace(entry.proof, **{k: v for k, v in changes.items() if k in ("index", "hashes",
                                                                                          "checkpoint")})
    rest = {k: v for k, v in changes.items() if k in ("cid", "data")}
    return dataclasses.replace(entry, proof=proof, **rest)


def with_checkpoint(b: ProofBundle, note: str, log_key: str | None = None) -> ProofBundle:
    return ProofBundle(log_key or b.log_key, replace_entry(b.record, checkpoint=note),
                       tuple(replace_entry(e, checkpoint=note) for e in b.key_events), b.anchor)


# --- honest bundles -----------------------------------------------------------------------------------------------
def test_honest_bundles_verify_offline(world: World) -> None:
    b = world.bundles["custodial"]
    assert ProofBundle.from_json(b.to_json()).to_json() == b.to_json()  # one byte form
    tofu = verify_bundle(b, image=world.images["custodial"])
    assert tofu.log_key_trust == TOFU and tofu.record_cid == world.cids["custodial"] and tofu.image_checked
    assert (tofu.publisher, tofu.custody, tofu.key_events) == ("acme", "service", 1)
    assert tofu.anchor is not None and tofu.anchor["ephemeral"] is True
    rotated = verify_bundle(world.bundles["rotated"], policy=VerifyPolicy(log_key=world.log_key))
    assert rotated.log_key_trust == "given" and rotated.custody == "publisher"
    assert rotated.key_events == 2  # registration + rotation, replayed: the new key signed the second record
    names = [c.check for c in rotated.checks]
    assert names.index("checkpoint.signature") < names.index("record.inclusion") < names.index("statement.signature")
    assert "attestation.signature" in names and rotated.tree_size == tofu.tree_size


def test_record_proof_is_a_c2sp_tlog_proof(world: World) -> None:
    b = world.bundles["rotated"]
    text = b.record.proof.encode()
    head, _, checkpoint = text.partition("\n\n")
    lines = head.split("\n")
    assert lines[0] == TLOG_PROOF_HEADER == "c2sp.org/tlog-proof@v1"
    assert lines[1] == f"index {b.record.index}" and len(lines) - 2 == len(b.record.proof.hashes)
    cp, _sigs = parse_checkpoint_note(checkpoint)
    hashes = [base64.b64decode(h) for h in lines[2:]]
    assert root_from_inclusion_proof(b.record.index, cp.size, leaf_hash(record_leaf_data(b.record.cid)),
                                     hashes) == cp.root
    assert parse_tlog_proof(text) == b.record.proof
    for e in b.key_events:
        assert e.proof.checkpoint == checkpoint


def test_witness_cosignature_quorum(world: World, tmp_path: Path) -> None:
    b = world.bundles["custodial"]
    w1, w2 = WitnessSigner("w1.example", Ed25519PrivateKey.generate()), \
        WitnessSigner("w2.example", Ed25519PrivateKey.generate())
    text, _ = parse_note(b.checkpoint)
    cosigned = with_checkpoint(b, add_cosignatures(b.checkpoint, [w1.cosign(text, 1_700_000_000)]))
    report = verify_bundle(cosigned, policy=VerifyPolicy(log_key=world.log_key, witness_keys=(w1.vkey(),)))
    assert report.witnesses == (w1.key.label,)
    msg = fails(cosigned, "cosignature.quorum", tmp_path,
                policy=VerifyPolicy(witness_keys=(w1.vkey(), w2.vkey())),
                cli_args=("--witness-key", w1.vkey(), "--witness-key", w2.vkey()))
    assert "1 of 2" in msg and "w2.example" in msg
    assert verify_bundle(cosigned, policy=VerifyPolicy(witness_keys=(w1.vkey(), w2.vkey()), witness_quorum=1))


# --- bad vectors --------------------------------------------------------------------------------------------------
def test_bad_wrong_inclusion_proof(world: World, tmp_path: Path) -> None:
    b = world.bundles["rotated"]
    hashes = list(b.record.proof.hashes)
    hashes[0] = bytes(32)
    bad = dataclasses.replace(b, record=replace_entry(b.record, hashes=tuple(hashes)))
    assert "is not in checkpoint" in fails(bad, "record.inclusion", tmp_path)
    moved = dataclasses.replace(b, record=replace_entry(b.record, index=b.record.index - 1))
    with pytest.raises(BundleError) as err:
        verify_bundle(moved)
    assert err.value.check == "record.inclusion"
    event = b.key_events[0]
    bad_event = dataclasses.replace(b, key_events=(replace_entry(event, hashes=event.proof.hashes[:-1]),
                                                   *b.key_events[1:]))
    with pytest.raises(BundleError) as err:
        verify_bundle(bad_event)
    assert err.value.check == "event.inclusion"


def test_bad_foreign_checkpoint(world: World, tmp_path: Path, operator: Operator) -> None:
    b = world.bundles["custodial"]
    text, _ = parse_note(b.checkpoint)
    name = world.log_key.split("+")[0]
    foreign_note = sign_note(text, name, Ed25519PrivateKey.generate())  # same log name and tree, another key
    assert "foreign" in fails(with_checkpoint(b, foreign_note), "checkpoint.signature", tmp_path / "a")
    # Another log's bundle is self-consistent: it passes on first use, never under this log's key.
    key = Ed25519PrivateKey.generate()
    reg = keyevents.registration("pub", key.public_key(), "publisher", operator.key)
    other = operator.bundle([reg, _attested(operator, key, png(10)).to_bytes()], 1)
    assert verify_bundle(other).log_key_trust == TOFU
    fails(other, "checkpoint.signature", tmp_path / "b", policy=VerifyPolicy(log_key=world.log_key))


def test_bad_chain_anchor_names_another_root(world: World, tmp_path: Path) -> None:
    b = world.bundles["custodial"]
    assert b.anchor is not None
    bad = dataclasses.replace(b, anchor=dataclasses.replace(b.anchor, root=bytes(range(32))))
    assert "root" in fails(bad, "anchor.root", tmp_path)
    other_size = dataclasses.replace(b, anchor=dataclasses.replace(b.anchor, tree_size=b.anchor.tree_size + 1))
    with pytest.raises(BundleError) as err:
        verify_bundle(other_size)
    assert err.value.check == "anchor.tree_size"


def test_ephemeral_or_unreachable_chain_is_named(world: World) -> None:
    b = world.bundles["custodial"]
    report = verify_bundle(b)
    with pytest.raises(BundleError) as err:
        verify_anchor_on_chain(b, report, "http://127.0.0.1:1")
    assert err.value.check == "anchor.ephemeral"
    assert b.anchor is not None
    durable = dataclasses.replace(b, anchor=dataclasses.replace(b.anchor, ephemeral=False))
    with pytest.raises(BundleError) as err:
        verify_anchor_on_chain(durable, verify_bundle(durable), f"http://127.0.0.1:{free_port()}", timeout_s=2)
    assert err.value.check == "anchor.unreachable"


def test_bad_record_signed_after_its_key_was_revoked(world: World, tmp_path: Path) -> None:
    """leaky revoked its key as of a time before it signed the record: the record is flagged, the others not."""
    msg = fails(world.bundles["revoked"], "key.revoked", tmp_path)
    assert "revocation time" in msg and world.cids["revoked"] in msg


def test_bad_record_appended_after_revocation_by_the_operator(operator: Operator, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    reg = keyevents.registration("pub", key.public_key(), "publisher", operator.key)
    rev = keyevents.revocation("pub", key_id_for(key.public_key()), key, reason="lost laptop")
    record = _attested(operator, key, png(11))
    ok = operator.bundle([reg, record.to_bytes()], 1)
    assert verify_bundle(ok, policy=VerifyPolicy(log_key=operator.vkey)).custody == "publisher"
    bad = operator.bundle([reg, rev, record.to_bytes()], 2)
    assert "revoked" in fails(bad, "key.revoked", tmp_path, policy=VerifyPolicy(log_key=operator.vkey))


def test_bad_tampered_statement(world: World, operator: Operator, tmp_path: Path) -> None:
    # Edited in the file: the bytes no longer hash to the CID the log committed to.
    b = world.bundles["rotated"]
    data = b.record.data.replace(b'"media_type":"image/png"', b'"media_type":"image/gif"')
    assert data != b.record.data
    fails(dataclasses.replace(b, record=replace_entry(b.record, data=data)), "record.cid", tmp_path / "a")
    # Edited by the operator, re-attested and logged: only the publisher's signature can tell.
    key = Ed25519PrivateKey.generate()
    honest = _attested(operator, key, png(12))
    changed = dataclasses.replace(honest.statement.statement,
                                  metadata=dataclasses.replace(honest.statement.statement.metadata, title="Riot"))
    forged = AttestedRecord.attest(dataclasses.replace(honest.statement, statement=changed), custody="publisher",
                                   width=64, height=48, byte_size=100, hashes=HASHES, c2pa=None,
                                   service_key=operator.key)
    reg = keyevents.registration("pub", key.public_key(), "publisher", operator.key)
    msg = fails(operator.bundle([reg, forged.to_bytes()], 1), "statement.signature", tmp_path / "b",
                policy=VerifyPolicy(log_key=operator.vkey))
    assert "does not verify" in msg


def test_bad_tampered_attestation(operator: Operator, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    honest = _attested(operator, key, png(13))
    other = (PerceptualHash("phash", "phash-v1", 64, "ffffffffffffffff"),)
    forged = dataclasses.replace(honest, attestation=dataclasses.replace(honest.attestation, hashes=other))
    reg = keyevents.registration("pub", key.public_key(), "publisher", operator.key)
    fails(operator.bundle([reg, forged.to_bytes()], 1), "attestation.signature", tmp_path,
          policy=VerifyPolicy(log_key=operator.vkey))


def test_bad_rotation_not_signed_by_the_old_key(operator: Operator, tmp_path: Path) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    reg = keyevents.registration("pub", old.public_key(), "publisher", operator.key)
    rot = keyevents.rotation("pub", key_id_for(old.public_key()), new.public_key(), "publisher", new)
    bad = operator.bundle([reg, rot, _attested(operator, new, png(14)).to_bytes()], 2)
    assert "rotation" in fails(bad, "key_history", tmp_path, policy=VerifyPolicy(log_key=operator.vkey))


def test_bad_truncated_or_malformed_json(world: World, tmp_path: Path) -> None:
    good = world.bundles["custodial"].to_json()
    fails(good[: len(good) // 2], "json", tmp_path / "a")
    obj = json.loads(good)
    cases = {
        "field:(bundle)": {**obj, "extra": 1},
        "field:record.data": {**obj, "record": {**obj["record"], "data": "not base64!"}},
        "field:anchor.block": {**obj, "anchor": {**obj["anchor"], "block": "2"}},
        "field:key_events": {**obj, "key_events": {}},
        "tlog_proof": {**obj, "record": {**obj["record"], "tlog_proof": obj["record"]["tlog_proof"][:40]}},
    }
    for n, (check, value) in enumerate(cases.items()):
        fails(json.dumps(value).encode(), check, tmp_path / str(n))
    with pytest.raises(BundleError) as err:
        ProofBundle.from_json(good[:-1] + b',"type":"x"}')
    assert err.value.check == "json" and "duplicate" in str(err.value)


def test_bad_image_not_the_records(world: World, tmp_path: Path) -> None:
    msg = fails(world.bundles["custodial"], "image.digest", tmp_path, image=world.images["rotated"])
    assert "not the record's image" in msg


def test_bad_event_checkpoint_differs(world: World, tmp_path: Path) -> None:
    b = world.bundles["rotated"]
    w = WitnessSigner("w.example", Ed25519PrivateKey.generate())
    text, _ = parse_note(b.checkpoint)
    other_note = add_cosignatures(b.checkpoint, [w.cosign(text, 1_700_000_000)])
    stale = dataclasses.replace(b, key_events=(replace_entry(b.key_events[0], checkpoint=other_note),
                                               *b.key_events[1:]))
    fails(stale, "event.checkpoint", tmp_path)


def _attested(operator: Operator, key: Ed25519PrivateKey, image: bytes) -> AttestedRecord:
    rec = AttestedRecord.attest(statement(image, "pub", key), custody="publisher", width=64, height=48,
                                byte_size=len(image), hashes=HASHES, c2pa=None, service_key=operator.key)
    assert isinstance(parse_record(rec.to_bytes()), AttestedRecord)
    return rec
