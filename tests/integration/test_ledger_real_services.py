"""The whole ledger on real services: a js-ipfs daemon over its RPC API, ganache over JSON-RPC, PostgreSQL.

Includes the one tamper that needs a durable chain: the ledger pointed at another chain or contract.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from provenance.anchor.evm import EvmAnchor
from provenance.audit import audit_ledger
from provenance.config import Settings
from provenance.records import PublisherMetadata
from provenance.services import deploy_contract, open_ledger

pytestmark = [pytest.mark.ipfs, pytest.mark.evm_rpc, pytest.mark.postgres]
META = PublisherMetadata(title="real services")


@pytest.fixture
def real_ledger(tmp_path: Path, ipfs_api_url: str, evm_rpc_url: str, pg_schema_url: str, shared_photos):  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path / "data", database_url=pg_schema_url, blockstore="ipfs",
                        ipfs_api_url=ipfs_api_url, chain_rpc_url=evm_rpc_url)
    ledger = open_ledger(settings)
    deploy_contract(settings, ledger)  # a fresh contract per test; its address is remembered in the DB
    ledger.add_publisher("acme")
    photos = sorted((shared_photos / "kodak24").glob("*.png"))[:3]
    results = [ledger.ingest(p.read_bytes(), publisher="acme", metadata=META, source=p.name) for p in photos]
    ledger.anchor()
    yield ledger, results, settings
    ledger.close()


def audit(ledger, anchor=None):  # type: ignore[no-untyped-def]
    return audit_ledger(ledger, log_public_key=ledger.log_public_key(), anchor=anchor or ledger.anchor_backend)


def test_full_ledger_on_real_services_audits_clean(real_ledger) -> None:  # type: ignore[no-untyped-def]
    ledger, results, _ = real_ledger
    for r in results:
        assert ledger.blockstore.is_pinned(r.image_cid) and ledger.blockstore.is_pinned(r.cid)
    report = audit(ledger)
    assert report.ok, report.summary()
    assert not report.chain_ephemeral and report.records_verified == 3
    [status] = report.anchors
    assert status.status == "verified" and status.chain_id == 1337 and status.block_timestamp > 1_600_000_000
    assert "NOT a durable timestamp" not in report.summary()


def test_audit_from_a_new_process_still_verifies_the_durable_anchor(real_ledger) -> None:  # type: ignore[no-untyped-def]
    ledger, _, settings = real_ledger
    reopened = open_ledger(settings)
    try:
        report = audit(reopened)
        assert report.ok and [a.status for a in report.anchors] == ["verified"]
    finally:
        reopened.close()


def test_chain_pointed_at_another_contract_fails(real_ledger, evm_rpc_url) -> None:  # type: ignore[no-untyped-def]
    ledger, _, _ = real_ledger
    other = EvmAnchor.deploy_to(evm_rpc_url)
    report = audit(ledger, anchor=other)
    assert [f.check for f in report.failures] == ["anchor.chain"]
    assert other.contract_address in report.failures[0].message


def test_receipt_pointed_at_a_contract_without_the_anchor_fails(real_ledger, evm_rpc_url) -> None:  # type: ignore[no-untyped-def]
    ledger, _, _ = real_ledger
    other = EvmAnchor.deploy_to(evm_rpc_url)
    with ledger.engine.begin() as conn:
        conn.execute(text("UPDATE checkpoints SET anchor_contract = :a"), {"a": other.contract_address})
    report = audit(ledger, anchor=other)
    assert [f.check for f in report.failures] == ["anchor.missing"]


def test_on_chain_root_that_differs_fails(real_ledger, evm_rpc_url) -> None:  # type: ignore[no-untyped-def]
    ledger, _, _ = real_ledger
    forged = EvmAnchor.deploy_to(evm_rpc_url)
    with ledger.engine.connect() as conn:
        size = conn.execute(text("SELECT max(tree_size) FROM checkpoints")).scalar_one()
    forged.anchor(ledger.config.log_id, size, b"\x99" * 32)
    with ledger.engine.begin() as conn:
        conn.execute(text("UPDATE checkpoints SET anchor_contract = :a"), {"a": forged.contract_address})
    report = audit(ledger, anchor=forged)
    [failure] = report.failures
    assert failure.check == "anchor.root" and "9999" in failure.message


def test_record_row_pointing_at_other_content_is_caught(real_ledger) -> None:  # type: ignore[no-untyped-def]
    """The indexed image CID column is rewritten to content that was never ingested."""
    ledger, results, _ = real_ledger
    from PIL import Image
    import io

    buf = io.BytesIO()
    Image.new("RGB", (31, 17), "green").save(buf, format="PNG")
    from provenance.cid import cid_for_bytes

    missing = cid_for_bytes(buf.getvalue())
    with ledger.engine.begin() as conn:
        conn.execute(text("UPDATE records SET image_cid = :m WHERE cid = :c"), {"m": missing, "c": results[0].cid})
    report = audit(ledger)
    assert "record.row" in {f.check for f in report.failures}
