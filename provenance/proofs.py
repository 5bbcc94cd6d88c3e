"""What an auditor needs for one record: its inclusion proof in the latest checkpoint, the signed checkpoint note,
the log's verifier key and the chain anchor, as plain JSON: what ``provenance records proof`` prints and
``GET /v1/records/{cid}/proof`` returns.

Everything is read in one read transaction so the proof, the tree size and the checkpoint agree.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from provenance.anchor.base import AnchorReceipt
from provenance.ledger import Ledger
from provenance.records_store import StoredCheckpoint, StoredRecord
from provenance.translog import encode_verifier_key, leaf_hash, record_leaf_data


def anchor_obj(receipt: AnchorReceipt | None) -> dict[str, Any] | None:
    if receipt is None:
        return None
    return {
        "chain_id": receipt.chain_id,
        "contract": receipt.contract_address,
        "tx": receipt.tx_hash,
        "block": receipt.block_number,
        "block_timestamp": receipt.block_timestamp,
        "block_time": datetime.fromtimestamp(receipt.block_timestamp, timezone.utc).isoformat().replace("+00:00", "Z"),
        "tree_size": receipt.tree_size,
        "log_id": receipt.log_id.hex(),
        "ephemeral": receipt.ephemeral,
    }


def checkpoint_obj(ledger: Ledger, cp: StoredCheckpoint) -> dict[str, Any]:
    return {
        "origin": ledger.config.origin,
        "tree_size": cp.tree_size,
        "root": cp.root.hex(),
        "note": cp.note,
        "verifier_key": encode_verifier_key(ledger.config.log_key_name, ledger.log_public_key()),
        "anchor": anchor_obj(cp.anchor),
    }


def latest_checkpoint(ledger: Ledger) -> StoredCheckpoint | None:
    with ledger.reader.connect() as conn:
        return ledger.store.latest_checkpoint(conn, ledger.config.log_id)


def get_record(ledger: Ledger, cid: str) -> StoredRecord | None:
    with ledger.reader.connect() as conn:
        return ledger.store.get(conn, cid)


def record_proof(ledger: Ledger, cid: str) -> dict[str, Any] | None:
    """The proof object of record ``cid``; None when there is no such record. A record not yet in a checkpoint
    gets ``checkpoint: null`` and an empty proof (the next checkpoint will include it)."""
    with ledger.reader.connect() as conn:
        rec = ledger.store.get(conn, cid)
        if rec is None:
            return None
        cp = ledger.store.latest_checkpoint(conn, ledger.config.log_id)
        included = cp is not None and rec.leaf_index < cp.tree_size
        proof = ledger.log.inclusion_proof(conn, rec.leaf_index, cp.tree_size) if included and cp else []
    return {
        "record_cid": cid,
        "leaf_index": rec.leaf_index,
        "leaf_hash": leaf_hash(record_leaf_data(cid)).hex(),
        "tree_size": cp.tree_size if included and cp else None,
        "inclusion_proof": [h.hex() for h in proof],
        "checkpoint": checkpoint_obj(ledger, cp) if included and cp else None,
    }
