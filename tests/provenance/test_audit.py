"""The audit catches tampering at every layer, each with a precise message."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from provenance.audit import audit_ledger
from provenance.records import PublisherMetadata

META = PublisherMetadata(title="t")


@pytest.fixture
def anchored(ledger, photo_bytes):  # type: ignore[no-untyped-def]
    results = [ledger.ingest(b, publisher="acme", metadata=META) for b in photo_bytes[:2]]
    ledger.anchor()
    results.append(ledger.ingest(photo_bytes[2], publisher="acme", metadata=META))
    ledger.anchor()
    return ledger, results


def run_audit(ledger, anchor="same"):  # type: ignore[no-untyped-def]
    backend = ledger.anchor_backend if anchor == "same" else anchor
    return audit_ledger(ledger, log_public_key=ledger.log_public_key(), anchor=backend)


def checks(report) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.check for f in report.failures}


def test_clean_ledger_passes_with_verified_anchors(anchored) -> None:  # type: ignore[no-untyped-def]
    ledger, _ = anchored
    report = run_audit(ledger)
    assert report.ok, report.summary()
    assert (report.records, report.records_verified, report.pending, report.checkpoints) == (3, 3, 0, 2)
    assert [a.status for a in report.anchors] == ["verified", "verified"]
    assert all(a.block_timestamp and a.block_timestamp > 1_600_000_000 for a in report.anchors)
    assert report.chain_ephemeral and "NOT a durable timestamp" in report.summary()


def test_pending_records_are_reported_not_failed(anchored, photo_bytes) -> None:  # type: ignore[no-untyped-def]
    ledger, _ = anchored
    from PIL import Image
    import io

    buf = io.BytesIO()
    Image.new("RGB", (50, 50), "blue").save(buf, format="PNG")
    ledger.ingest(buf.getvalue(), publisher="acme", metadata=META)
    report = run_audit(ledger)
    assert report.ok and report.pending == 1
    assert any(w.check == "log.pending" for w in report.warnings)


def test_tampered_record_row(anchored) -> None:  # type: ignore[no-untyped-def]
    ledger, results = anchored
    with ledger.engine.begin() as conn:
        raw = conn.execute(text("SELECT record_bytes FROM records WHERE cid = :c"), {"c": results[1].cid}).scalar_one()
        forged = bytes(raw).replace(b'"title":"t"', b'"title":"x"')
        assert forged != bytes(raw)
        conn.execute(text("UPDATE records SET record_bytes = :b WHERE cid = :c"), {"b": forged, "c": results[1].cid})
    report = run_audit(ledger)
    assert not report.ok
    cid_failures = [f for f in report.failures if f.check == "record.cid"]
    assert len(cid_failures) == 1 and results[1].cid in cid_failures[0].subject
    assert "record row was altered" in cid_failures[0].message
    assert "record.signature" in checks(report)  # the forged title is not what the publisher signed


def test_tampered_blob_in_block_store(anchored) -> None:  # type: ignore[no-untyped-def]
    ledger, results = anchored
    image_cid = results[0].image_cid
    path = next(p for p in ledger.blockstore.root.rglob("*") if p.is_file() and image_cid in p.name)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    report = run_audit(ledger)
    assert checks(report) == {"blob.image"}
    [finding] = report.failures
    assert image_cid in finding.message and results[0].cid in finding.subject


def test_tampered_log_leaf(anchored) -> None:  # type: ignore[no-untyped-def]
    ledger, results = anchored
    with ledger.engine.begin() as conn:
        conn.execute(text("UPDATE log_leaves SET leaf_hash = :h WHERE idx = 2"), {"h": b"\x11" * 32})
    report = run_audit(ledger)
    leaf = [f for f in report.failures if f.check == "log.leaf"]
    assert len(leaf) == 1 and "log leaf 2 is 1111" in leaf[0].message


def test_tampered_log_node_breaks_inclusion(anchored) -> None:  # type: ignore[no-untyped-def]
    ledger, _ = anchored
    with ledger.engine.begin() as conn:
        conn.execute(text("UPDATE log_nodes SET hash = :h WHERE level = 1 AND idx = 0"), {"h": b"\x22" * 32})
    report = run_audit(ledger)
    assert "log.inclusion" in checks(report) or "log.consistency" in checks(report)
    assert not report.ok


def test_tampered_checkpoint_note(anchored) -> None:  # type: ignore[no-untyped-def]
    ledger, _ = anchored
    with ledger.engine.begin() as conn:
        note = conn.execute(text("SELECT note FROM checkpoints WHERE tree_size = 3")).scalar_one()
        lines = note.split("\n")
        lines[1] = "4"  # claim a bigger tree under the old signature
        conn.execute(text("UPDATE checkpoints SET note = :n WHERE tree_size = 3"), {"n": "\n".join(lines)})
    report = run_audit(ledger)
    sig = [f for f in report.failures if f.check == "checkpoint.signature"]
    assert len(sig) == 1 and sig[0].subject == "checkpoint 3"


def test_tampered_checkpoint_root_column(anchored) -> None:  # type: ignore[no-untyped-def]
    ledger, _ = anchored
    with ledger.engine.begin() as conn:
        conn.execute(text("UPDATE checkpoints SET root = :r WHERE tree_size = 4"), {"r": b"\x33" * 32})
    report = run_audit(ledger)
    assert "checkpoint.row" in checks(report)


def test_checkpoint_signed_by_another_key(anchored, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    ledger, _ = anchored
    report = audit_ledger(ledger, log_public_key=Ed25519PrivateKey.generate().public_key(),
                          anchor=ledger.anchor_backend)
    assert {f.check for f in report.failures} >= {"checkpoint.signature"}


def test_chain_pointed_elsewhere(anchored) -> None:  # type: ignore[no-untyped-def]
    """A fresh in-process chain is another chain: the anchors are not there."""
    from provenance.anchor.evm import EvmAnchor

    ledger, _ = anchored
    elsewhere = EvmAnchor.in_process()
    report = run_audit(ledger, anchor=elsewhere)
    # anchors were made on an ephemeral chain: different chain -> explicit "no durable timestamp" warnings
    assert [a.status for a in report.anchors] == ["ephemeral", "ephemeral"]
    assert all("no durable timestamp" in w.message for w in report.warnings if w.check == "anchor.ephemeral")


def test_new_process_on_embedded_chain_says_so(anchored, make_ledger) -> None:  # type: ignore[no-untyped-def]
    ledger, _ = anchored
    reopened = make_ledger(ledger.blockstore.root.parent)
    report = audit_ledger(reopened, log_public_key=reopened.log_public_key(), anchor=reopened.anchor_backend)
    assert report.ok  # records and proofs still verify ...
    assert {a.status for a in report.anchors} == {"ephemeral"}  # ... but the timestamps are honestly gone
    assert report.records_verified == 3
