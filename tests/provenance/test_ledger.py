"""Ingest, idempotency, refusal of bad input with nothing half-written, checkpoints and anchoring."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from provenance.cid import cid_for_bytes
from provenance.errors import (
    BlockStoreUnavailableError,
    ChainUnavailableError,
    InvalidImageError,
    ProvenanceError,
    SignatureError,
    UnknownPublisherError,
)
from provenance.ledger import IngestFailure, IngestResult
from provenance.records import AttestedRecord, PublisherMetadata, parse_record
from provenance.statements import STATEMENT_DOMAIN, SignedStatement, sign_domain
from provenance.translog import verify_checkpoint_note, verify_inclusion, leaf_hash

META = PublisherMetadata(title="t", author="a")


def log_size(ledger) -> int:  # type: ignore[no-untyped-def]
    with ledger.engine.connect() as conn:
        return ledger.log.size(conn)


def record_count(ledger) -> int:  # type: ignore[no-untyped-def]
    with ledger.engine.connect() as conn:
        return ledger.store.count(conn)


def test_ingest_appends_signed_content_addressed_records(ledger, photo_bytes) -> None:  # type: ignore[no-untyped-def]
    base = log_size(ledger)  # acme's key registration is leaf 0
    assert base == 1
    results = [ledger.ingest(b, publisher="acme", metadata=META) for b in photo_bytes]
    assert [r.leaf_index for r in results] == [1, 2, 3]
    assert not any(r.duplicate for r in results)
    for data, res in zip(photo_bytes, results):
        assert res.image_cid == cid_for_bytes(data)
        assert ledger.blockstore.get(res.image_cid) == data
        record_bytes = ledger.blockstore.get(res.cid)
        assert cid_for_bytes(record_bytes) == res.cid
        signed = parse_record(record_bytes)
        assert isinstance(signed, AttestedRecord) and signed.custody == "service"
        signed.verify_attestation(ledger.log_public_key())
        assert signed.record.image_sha256 == hashlib.sha256(data).hexdigest()
        by_alg = {h.alg: h for h in signed.record.hashes}
        assert set(by_alg) == {"oscar-net", "phash", "global-id"}
        assert all(len(h.value) == h.bits // 4 for h in by_alg.values()) and by_alg["global-id"].bits == 256
        assert by_alg["global-id"].model_id.startswith("global-id-v1-")
        assert by_alg["oscar-net"].model_id.startswith("oscar-v1-")
        assert signed.record.metadata == META


def test_get_many_returns_the_stored_records_that_exist_across_batches(ledger, photo_bytes) -> None:  # type: ignore[no-untyped-def]
    results = [ledger.ingest(b, publisher="acme", metadata=META) for b in photo_bytes]
    wanted = [r.cid for r in results] + ["bafkreinotarecord", results[0].cid]
    with ledger.engine.connect() as conn:
        for batch in (1, 2, 500):  # a batch boundary inside the list must not lose or duplicate a record
            got = ledger.store.get_many(conn, wanted, batch=batch)
            assert set(got) == {r.cid for r in results}
            for r in results:
                one = ledger.store.get(conn, r.cid)
                assert got[r.cid].record_bytes == one.record_bytes and got[r.cid].leaf_index == r.leaf_index
        assert ledger.store.get_many(conn, []) == {}


def test_same_bytes_same_publisher_is_idempotent(ledger, photo_bytes) -> None:  # type: ignore[no-untyped-def]
    first = ledger.ingest(photo_bytes[0], publisher="acme", metadata=META)
    again = ledger.ingest(photo_bytes[0], publisher="acme", metadata=PublisherMetadata(title="other"))
    assert again.duplicate and again.cid == first.cid and again.leaf_index == first.leaf_index
    assert log_size(ledger) == 2  # registration + one record


def test_directory_ingest_refuses_bad_files_and_keeps_good_ones(ledger, tmp_path, photo_bytes) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(photo_bytes[0])
    (folder / "b_truncated.jpg").write_bytes(_jpeg()[:300])
    (folder / "c_not_image.png").write_bytes(b"this is a text file pretending to be a png")
    (folder / "d.png").write_bytes(photo_bytes[1])
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    outcomes = list(ledger.ingest_paths([folder], publisher="acme", metadata=META))
    ok = [o for o in outcomes if isinstance(o, IngestResult)]
    bad = {Path(o.source).name: str(o.error) for o in outcomes if isinstance(o, IngestFailure)}
    assert len(ok) == 2
    assert set(bad) == {"b_truncated.jpg", "c_not_image.png"}
    assert "corrupt or truncated" in bad["b_truncated.jpg"] and "not an image" in bad["c_not_image.png"]
    assert log_size(ledger) == 3 and record_count(ledger) == 2


def test_unknown_publisher_is_rejected_and_nothing_written(ledger, photo_bytes) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UnknownPublisherError, match="not registered"):
        ledger.ingest(photo_bytes[0], publisher="nobody", metadata=META)
    assert log_size(ledger) == 1 and record_count(ledger) == 0
    assert not ledger.blockstore.has(cid_for_bytes(photo_bytes[0]))


def test_bad_signature_is_rejected_and_nothing_written(ledger, photo_bytes) -> None:  # type: ignore[no-untyped-def]
    good = ledger.ingest(photo_bytes[0], publisher="acme", metadata=META)
    signed = parse_record(ledger.blockstore.get(good.cid))
    # A forged statement for a new image, signed by someone else's key but naming acme's key id.
    st = signed.statement.statement
    forged_st = dataclasses.replace(st, image_sha256=hashlib.sha256(photo_bytes[1]).hexdigest(),
                                    image_cid=cid_for_bytes(photo_bytes[1]))
    attacker = Ed25519PrivateKey.generate()
    forged = SignedStatement(forged_st, sign_domain(STATEMENT_DOMAIN, forged_st.body(), attacker))
    with pytest.raises(SignatureError, match="does not verify"):
        ledger.ingest(photo_bytes[1], publisher="acme", metadata=META, statement=forged)
    assert log_size(ledger) == 2
    assert not ledger.blockstore.has(cid_for_bytes(photo_bytes[1]))


def test_signed_record_must_match_its_image(ledger, photo_bytes) -> None:  # type: ignore[no-untyped-def]
    good = ledger.ingest(photo_bytes[0], publisher="acme", metadata=META)
    signed = parse_record(ledger.blockstore.get(good.cid))
    with pytest.raises(InvalidImageError, match="do not match"):
        ledger.ingest_signed(signed, photo_bytes[1])


def test_ipfs_down_fails_clearly_and_loses_nothing(make_ledger, tmp_path, photo_bytes) -> None:  # type: ignore[no-untyped-def]
    from tests.fixtures.services import free_port

    data_dir = tmp_path / "shared-data"
    local = make_ledger(data_dir)
    local.add_publisher("acme")
    first = local.ingest(photo_bytes[0], publisher="acme", metadata=META)
    url = f"http://127.0.0.1:{free_port()}"
    down = make_ledger(data_dir, blockstore="ipfs", ipfs_api_url=url, ipfs_timeout_s=2)
    with pytest.raises(BlockStoreUnavailableError) as info:
        down.ingest(photo_bytes[1], publisher="acme", metadata=META)
    assert url in str(info.value)
    assert log_size(local) == 2
    with local.engine.connect() as conn:
        assert local.store.get(conn, first.cid) is not None


def test_chain_down_fails_clearly_and_loses_nothing(make_ledger, tmp_path, photo_bytes) -> None:  # type: ignore[no-untyped-def]
    from tests.fixtures.services import free_port

    url = f"http://127.0.0.1:{free_port()}"
    led = make_ledger(chain_rpc_url=url, chain_timeout_s=2)
    led.add_publisher("acme")
    led.ingest(photo_bytes[0], publisher="acme", metadata=META)
    with pytest.raises(ChainUnavailableError) as info:
        led.anchor()
    assert url in str(info.value)
    assert log_size(led) == 2
    with led.engine.connect() as conn:
        cp = led.store.latest_checkpoint(conn, led.config.log_id)
    assert cp is not None and cp.tree_size == 2 and cp.anchor is None  # signed, waiting to be anchored


def test_checkpoint_is_signed_and_covers_every_record(ledger, photo_bytes) -> None:  # type: ignore[no-untyped-def]
    results = [ledger.ingest(b, publisher="acme", metadata=META) for b in photo_bytes]
    cp = ledger.checkpoint()
    parsed = verify_checkpoint_note(cp.note, ledger.config.log_key_name, ledger.log_public_key())
    assert (parsed.size, parsed.root, parsed.origin) == (4, cp.root, ledger.config.origin)
    with ledger.engine.connect() as conn:
        for r in results:
            proof = ledger.log.inclusion_proof(conn, r.leaf_index, 4)
            verify_inclusion(r.leaf_index, 4, leaf_hash(r.cid.encode()), proof, cp.root)
    assert ledger.checkpoint() == cp  # the tree has not grown: no new checkpoint


def test_empty_log_cannot_be_checkpointed(make_ledger) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ProvenanceError, match="empty"):
        make_ledger().checkpoint()


def test_one_transaction_per_anchor_whatever_the_record_count(ledger, photo_bytes) -> None:  # type: ignore[no-untyped-def]
    for b in photo_bytes:
        ledger.ingest(b, publisher="acme", metadata=META)
    first = ledger.anchor()
    assert first.anchor is not None and first.anchor.tree_size == 4
    assert ledger.anchor().anchor == first.anchor  # nothing new: no second transaction
    ledger.ingest(_jpeg(), publisher="acme", metadata=META)
    second = ledger.anchor()
    assert second.anchor is not None
    assert second.anchor.block_number == first.anchor.block_number + 1
    onchain = ledger.anchor_backend.read(ledger.config.log_id, 5)
    assert onchain is not None and onchain.root == second.root


def _sig(key: Ed25519PrivateKey, rec) -> str:  # type: ignore[no-untyped-def]
    import base64

    return base64.b64encode(key.sign(rec.signing_payload())).decode()


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.effect_noise((320, 240), 40).convert("RGB").save(buf, format="JPEG")
    return buf.getvalue()
