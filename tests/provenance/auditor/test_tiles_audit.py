"""``audit --from-tiles``: an audit from public data only (provenance.auditor.tiles_audit), over directories written
by ``provenance log export-tiles`` and CARs written by ``provenance export-car`` from real ledgers of signed records.
Each tamper is caught and named: an edited tile, a missing entry bundle, a record blob that does not match its CID,
a checkpoint whose root differs from the chain's anchor (in-process EVM and ganache), and a witness cosignature made
with another key. Cosignatures are made here from the C2SP tlog-cosignature text, not with our signing code."""

from __future__ import annotations

import base64
import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from provenance.anchor.base import log_id_for
from provenance.auditor.chain import ChainAnchors
from provenance.auditor.sources import CarBlockSource, DirectoryTileSource
from provenance.auditor.tiles_audit import AuditPolicy, TilesAuditReport, audit_tiles
from provenance.blockstore.car import read_car, write_car
from provenance.cid import cid_to_bytes
from provenance.tlog_tiles import export_tiles
from provenance.translog.checkpoint import encode_verifier_key, parse_checkpoint_note, parse_verifier_key
from provenance.translog.cosignature import parse_witness_vkey
from tests.provenance.tiled_log import BuiltLog, build_log, cli, records_ledger


@dataclass
class Exported:
    built: BuiltLog
    records: list[str]
    tiles: Path
    car: Path
    publisher_key: str  # base64 raw Ed25519


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    root = tmp_path_factory.mktemp("audit")
    built, records = records_ledger(root / "data", 4)
    tiles, car = root / "tiles", root / "log.car"
    assert cli("--data-dir", str(built.data_dir), "log", "export-tiles", str(tiles)).returncode == 0
    done = cli("--data-dir", str(built.data_dir), "export-car", str(car))
    assert done.returncode == 0, done.stderr
    pub = built.ledger.keyring.publisher_key("acme").public_key().public_bytes_raw()
    yield Exported(built, records, tiles, car, base64.b64encode(pub).decode())
    built.ledger.close()


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BuiltLog, Path]]:
    """A log of 600 synthetic entries (two full level-0 tiles) exported as tiles."""
    built = build_log(tmp_path_factory.mktemp("audit-big") / "data", [300, 600])
    out = built.data_dir.parent / "tiles"
    export_tiles(built.ledger, out)
    yield built, out
    built.ledger.close()


def _policy(built: BuiltLog, **kw: object) -> AuditPolicy:
    return AuditPolicy(log_key=parse_verifier_key(built.vkey), **kw)  # type: ignore[arg-type]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _failure(report: TilesAuditReport, check: str) -> list[str]:
    return [f.subject for f in report.findings if f.check == check]


# --- the clean case -------------------------------------------------------------------------------------------------
def test_a_clean_log_verifies_every_record_from_the_key_history_in_the_log(exported: Exported) -> None:
    # Only the log's key is given: publishers' keys come from the key events in the log itself.
    report = audit_tiles(DirectoryTileSource(exported.tiles), _policy(exported.built),
                         blocks=CarBlockSource(exported.car))
    assert report.ok, report.summary()
    assert report.log_signature == "verified" and report.rebuilt_root == report.checkpoint.root  # type: ignore[union-attr]
    by_cid = {r.cid: r for r in report.records}
    assert len(report.records) == len(exported.built.cids) == len(exported.records) + 1  # + the key registration
    for cid in exported.records:
        r = by_cid[cid]
        assert (r.leaf, r.blob, r.kind, r.signature, r.image) == ("ok", "ok", "record", "verified", "ok")
    registration = by_cid[exported.built.cids[0]]
    assert (registration.kind, registration.signature) == ("key-event", "verified")
    assert {u["check"] for u in report.unchecked} == {"cosignature", "anchor"}


def test_without_the_log_key_a_publisher_key_still_checks_records(exported: Exported) -> None:
    raw = base64.b64decode(exported.publisher_key)
    keys = {"ed25519:" + hashlib.sha256(raw).hexdigest()[:32]: Ed25519PublicKey.from_public_bytes(raw)}
    report = audit_tiles(DirectoryTileSource(exported.tiles), AuditPolicy(publisher_keys=keys),
                         blocks=CarBlockSource(exported.car))
    assert report.ok, report.summary()
    assert {r.signature for r in report.records if r.kind == "record"} == {"verified"}
    assert {u["check"] for u in report.unchecked} >= {"checkpoint.signature", "key-event.signature"}
    other = {"ed25519:" + hashlib.sha256(raw).hexdigest()[:32]: Ed25519PrivateKey.generate().public_key()}
    report = audit_tiles(DirectoryTileSource(exported.tiles), AuditPolicy(publisher_keys=other),
                         blocks=CarBlockSource(exported.car))
    assert report.failed_checks == ["record.signature"]
    assert len(_failure(report, "record.signature")) == len(exported.records)


def _export_all(built: BuiltLog, out: Path) -> tuple[Path, Path]:
    """Tiles and a CAR of every log entry and image of ``built``'s ledger (as export-tiles and export-car write)."""
    ledger = built.ledger
    cp = ledger.checkpoint()
    export_tiles(ledger, out / "tiles")
    with ledger.reader.connect() as conn:
        entries = ledger.log.record_cid_run(conn, 0, cp.tree_size)
        images = [rec.image_cid for rec in ledger.store.iter_records(conn)]
    ledger.blockstore.export_car(list(dict.fromkeys([*entries, *images])), out / "log.car")  # type: ignore[attr-defined]
    return out / "tiles", out / "log.car"


def test_a_key_event_the_operator_did_not_sign_is_caught(tmp_path: Path) -> None:
    from provenance import keyevents

    built, _records = records_ledger(tmp_path / "data", 1)
    try:
        ledger = built.ledger
        forged = keyevents.registration("mallory", Ed25519PrivateKey.generate().public_key(), "publisher",
                                        Ed25519PrivateKey.generate())  # not the operator's key
        cid = ledger.blockstore.put(forged.to_bytes())
        with ledger.engine.begin() as conn:
            index = ledger.log.append(conn, cid).index
        tiles, car = _export_all(built, tmp_path)
        report = audit_tiles(DirectoryTileSource(tiles), _policy(built), blocks=CarBlockSource(car))
        assert report.failed_checks == ["key-event.invalid"], report.summary()
        assert _failure(report, "key-event.invalid") == [f"leaf {index} ({cid})"]
        assert report.records[index].signature == "failed"
    finally:
        built.ledger.close()


def test_without_keys_the_unchecked_parts_are_said_and_do_not_fail(exported: Exported) -> None:
    report = audit_tiles(DirectoryTileSource(exported.tiles))
    assert report.ok and report.log_signature == "unchecked"
    assert {u["check"] for u in report.unchecked} >= {"checkpoint.signature", "record.blob", "anchor"}
    assert all(r.leaf == "ok" and r.blob == "unchecked" for r in report.records)


def test_a_checkpoint_signed_by_another_key_fails(exported: Exported) -> None:
    vkey = encode_verifier_key(exported.built.ledger.config.log_key_name, Ed25519PrivateKey.generate().public_key())
    report = audit_tiles(DirectoryTileSource(exported.tiles), AuditPolicy(log_key=parse_verifier_key(vkey)))
    assert report.failed_checks == ["checkpoint.signature"] and report.log_signature == "failed"


# --- tampering, each caught and named ---------------------------------------------------------------------------------
def test_an_edited_full_tile_is_caught(big: tuple[BuiltLog, Path], tmp_path: Path) -> None:
    built, tiles = big
    bad = _copy(tiles, tmp_path / "t")
    tile = bad / "tile/0/000"
    data = bytearray(tile.read_bytes())
    data[40] ^= 1  # hash 1 of the first level-0 tile
    tile.write_bytes(bytes(data))
    report = audit_tiles(DirectoryTileSource(bad), _policy(built))
    assert not report.ok
    assert _failure(report, "tile.hash") == ["tile/0/000"]
    assert _failure(report, "entries.leaf") == ["leaf 1"]


def test_an_edited_partial_tile_changes_the_root(big: tuple[BuiltLog, Path], tmp_path: Path) -> None:
    built, tiles = big
    bad = _copy(tiles, tmp_path / "t")
    tile = bad / "tile/1/000.p/2"
    tile.write_bytes(bytes(32) + tile.read_bytes()[32:])
    report = audit_tiles(DirectoryTileSource(bad), _policy(built))
    assert _failure(report, "checkpoint.root") == ["tree size 600"]
    assert _failure(report, "tile.hash") == ["tile/0/000"]  # the level above no longer matches tile 0


def test_a_missing_entry_bundle_is_caught(big: tuple[BuiltLog, Path], tmp_path: Path) -> None:
    built, tiles = big
    bad = _copy(tiles, tmp_path / "t")
    (bad / "tile/entries/001").unlink()
    report = audit_tiles(DirectoryTileSource(bad), _policy(built))
    assert report.failed_checks == ["entries.missing"] and _failure(report, "entries.missing") == ["tile/entries/001"]
    assert sum(r.leaf == "missing" for r in report.records) == 256


def test_a_missing_tile_and_a_missing_checkpoint_are_caught(big: tuple[BuiltLog, Path], tmp_path: Path) -> None:
    built, tiles = big
    bad = _copy(tiles, tmp_path / "t")
    (bad / "tile/0/002.p/88").unlink()
    report = audit_tiles(DirectoryTileSource(bad), _policy(built))
    assert _failure(report, "tile.missing") == ["tile/0/002.p/88"] and report.rebuilt_root is None
    (bad / "checkpoint").unlink()
    assert audit_tiles(DirectoryTileSource(bad), _policy(built)).failed_checks == ["checkpoint.missing"]


def test_a_record_blob_that_does_not_match_its_cid_is_caught(exported: Exported, tmp_path: Path) -> None:
    target = exported.records[1]
    raw = cid_to_bytes(target)
    _roots, sections = read_car(exported.car.read_bytes())
    blocks = [(cid, block.replace(b"photo 1", b"photo X") if cid == raw else block) for cid, block in sections]
    assert any(cid == raw for cid, _ in blocks)
    bad = tmp_path / "bad.car"
    with bad.open("wb") as fh:
        write_car(exported.records, blocks, fh)
    report = audit_tiles(DirectoryTileSource(exported.tiles), _policy(exported.built), blocks=CarBlockSource(bad))
    index = exported.built.cids.index(target)
    assert report.failed_checks == ["record.cid"]
    assert _failure(report, "record.cid") == [f"leaf {index} ({target})"]
    assert report.records[index].blob == "mismatch" and not report.records[index].ok


def test_a_record_blob_missing_from_the_car_is_caught(exported: Exported, tmp_path: Path) -> None:
    target = exported.records[2]
    _roots, sections = read_car(exported.car.read_bytes())
    bad = tmp_path / "bad.car"
    with bad.open("wb") as fh:
        write_car(exported.records, [(c, b) for c, b in sections if c != cid_to_bytes(target)], fh)
    report = audit_tiles(DirectoryTileSource(exported.tiles), _policy(exported.built), blocks=CarBlockSource(bad))
    assert report.failed_checks == ["record.missing"]


def test_a_record_signed_with_a_key_the_operator_installed_is_flagged(tmp_path: Path) -> None:
    from provenance import keyevents
    from provenance.cid import cid_for_bytes
    from provenance.metadata import PublisherMetadata
    from provenance.statements import PublisherStatement, key_id_for, utc_now
    from tests.provenance.api.fakes import textured_image

    built, _records = records_ledger(tmp_path / "data", 0)
    try:
        ledger = built.ledger
        lost, installed = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        ledger.add_publisher("daily", public_key=lost.public_key())  # the publisher holds its key
        operator = ledger.keyring.service_key(ledger.config.log_key_name)
        ledger.append_key_event(keyevents.rotation("daily", key_id_for(lost.public_key()), installed.public_key(),
                                                   "publisher", operator, by_operator=True))
        image, meta = textured_image(9), PublisherMetadata(title="after the rotation")
        statement = PublisherStatement(hashlib.sha256(image).hexdigest(), cid_for_bytes(image), "image/png", meta,
                                       "daily", key_id_for(installed.public_key()), utc_now()).sign(installed)
        cid = ledger.ingest(image, publisher="daily", metadata=meta, statement=statement).cid
        tiles, car = _export_all(built, tmp_path)
        report = audit_tiles(DirectoryTileSource(tiles), _policy(built), blocks=CarBlockSource(car))
        assert report.failed_checks == ["record.operator_key"], report.summary()
        index = [r.cid for r in report.records].index(cid)
        assert _failure(report, "record.operator_key") == [f"leaf {index} ({cid})"]
        trusting = audit_tiles(DirectoryTileSource(tiles), _policy(built, trust_operator_rotations=True),
                               blocks=CarBlockSource(car))
        assert trusting.ok and "record.operator_key" in {u["check"] for u in trusting.unchecked}
    finally:
        built.ledger.close()


# --- witnesses (cosignatures written from the tlog-cosignature text) -----------------------------------------------
def _witness_vkey(name: str, key: Ed25519PrivateKey) -> str:
    pub = key.public_key().public_bytes_raw()
    kid = hashlib.sha256(name.encode() + b"\n\x04" + pub).digest()[:4]
    key64 = base64.b64encode(bytes([4]) + pub).decode()
    return f"{name}+{kid.hex()}+{key64}"


def _cosign_line(body: str, name: str, key: Ed25519PrivateKey, *, signer: Ed25519PrivateKey | None = None,
                 timestamp: int = 1_700_000_000) -> str:
    """A cosignature line by ``name`` with ``key``'s key ID, signed by ``signer`` (default: ``key`` itself)."""
    pub = key.public_key().public_bytes_raw()
    kid = hashlib.sha256(name.encode() + b"\n\x04" + pub).digest()[:4]
    message = f"cosignature/v1\ntime {timestamp}\n{body}".encode()
    sig = (signer or key).sign(message)
    return f"\u2014 {name} {base64.b64encode(kid + timestamp.to_bytes(8, 'big') + sig).decode()}\n"


def _with_checkpoint(tiles: Path, dst: Path, note: str) -> Path:
    out = _copy(tiles, dst)
    (out / "checkpoint").write_text(note, encoding="utf-8")
    return out


def test_cosignatures_quorum_and_a_cosignature_made_with_another_key(exported: Exported, tmp_path: Path) -> None:
    note = (exported.tiles / "checkpoint").read_text(encoding="utf-8")
    body = note[: note.index("\n\n") + 1]
    w1, w2, intruder = (Ed25519PrivateKey.generate() for _ in range(3))
    witnesses = tuple(parse_witness_vkey(_witness_vkey(n, k)) for n, k in (("w1.example", w1), ("w2.example", w2)))

    good = _with_checkpoint(exported.tiles, tmp_path / "good", note + _cosign_line(body, "w1.example", w1)
                            + _cosign_line(body, "w2.example", w2))
    report = audit_tiles(DirectoryTileSource(good), _policy(exported.built, witnesses=witnesses))
    assert report.ok, report.summary()
    assert [c["status"] for c in report.cosignatures] == ["valid", "valid"]

    # w2's line carries w2's name and key ID but was signed by another key
    forged = _with_checkpoint(exported.tiles, tmp_path / "forged", note + _cosign_line(body, "w1.example", w1)
                              + _cosign_line(body, "w2.example", w2, signer=intruder))
    report = audit_tiles(DirectoryTileSource(forged), _policy(exported.built, witnesses=witnesses))
    assert report.failed_checks == ["cosignature.quorum", "cosignature.signature"]
    assert _failure(report, "cosignature.signature") == [witnesses[1].label]
    # with a quorum of 1 the valid one suffices, but the forged line is still named
    report = audit_tiles(DirectoryTileSource(forged), _policy(exported.built, witnesses=witnesses, quorum=1))
    assert report.failed_checks == ["cosignature.signature"]

    # a cosignature under w2's name with the other key's own key ID does not count for w2: below the quorum
    other = _with_checkpoint(exported.tiles, tmp_path / "other", note + _cosign_line(body, "w1.example", w1)
                             + _cosign_line(body, "w2.example", intruder))
    report = audit_tiles(DirectoryTileSource(other), _policy(exported.built, witnesses=witnesses))
    assert report.failed_checks == ["cosignature.quorum"]
    assert witnesses[1].label in report.findings[0].message
    assert audit_tiles(DirectoryTileSource(other), _policy(exported.built, witnesses=witnesses, quorum=1)).ok


# --- the chain --------------------------------------------------------------------------------------------------------
def test_anchors_on_chain_are_checked_against_the_tiles(big: tuple[BuiltLog, Path], evm_anchor) -> None:  # type: ignore[no-untyped-def]
    built, tiles = big
    cp300, _ = parse_checkpoint_note(built.notes[300])
    cp600, _ = parse_checkpoint_note(built.notes[600])
    log_id = log_id_for(cp600.origin)
    chain = ChainAnchors(evm_anchor)
    report = audit_tiles(DirectoryTileSource(tiles), _policy(built), chain=chain)
    assert report.failed_checks == ["anchor.missing"]

    evm_anchor.anchor(log_id, 300, cp300.root)  # an earlier checkpoint: checked against the root the tiles give
    evm_anchor.anchor(log_id, 600, cp600.root)
    report = audit_tiles(DirectoryTileSource(tiles), _policy(built), chain=chain)
    assert report.ok, report.summary()
    assert [(a.tree_size, a.status) for a in report.anchors] == [(300, "verified"), (600, "verified")]


def test_a_checkpoint_whose_root_differs_from_the_anchor_is_caught(big: tuple[BuiltLog, Path], evm_anchor) -> None:  # type: ignore[no-untyped-def]
    built, tiles = big
    cp600, _ = parse_checkpoint_note(built.notes[600])
    log_id = log_id_for(cp600.origin)
    evm_anchor.anchor(log_id, 300, hashlib.sha256(b"a forked tree").digest())
    evm_anchor.anchor(log_id, 600, hashlib.sha256(b"another history").digest())
    report = audit_tiles(DirectoryTileSource(tiles), _policy(built), chain=ChainAnchors(evm_anchor))
    assert report.failed_checks == ["anchor.root"]
    assert _failure(report, "anchor.root") == ["tree size 300", "tree size 600"]
    assert [a.status for a in report.anchors] == ["mismatch", "mismatch"]


# --- blobs from a real IPFS daemon ------------------------------------------------------------------------------------
@pytest.mark.ipfs
def test_blobs_from_an_ipfs_daemon(exported: Exported, ipfs_api_url: str) -> None:
    from provenance.auditor.sources import IpfsBlockSource
    from provenance.blockstore.ipfs_rpc import IpfsRpcBlockStore

    local = exported.built.ledger.blockstore
    withheld = exported.records[-1]  # the daemon is given every blob but this record's
    with IpfsRpcBlockStore(ipfs_api_url) as ipfs, exported.built.ledger.reader.connect() as conn:
        for cid in exported.built.cids:
            if cid != withheld:
                assert ipfs.put(local.get(cid)) == cid
        for rec in exported.built.ledger.store.iter_records(conn):
            ipfs.put(local.get(rec.image_cid))
    source = IpfsBlockSource(ipfs_api_url)
    try:
        report = audit_tiles(DirectoryTileSource(exported.tiles), _policy(exported.built), blocks=source)
    finally:
        source.close()
    assert report.failed_checks == ["record.missing"]
    assert _failure(report, "record.missing") == [f"leaf {exported.built.cids.index(withheld)} ({withheld})"]
    assert sum(r.signature == "verified" for r in report.records) == len(exported.built.cids) - 1
