"""Building a proof bundle from the ledger (the storage side; verifying one needs none of this).

Everything is read in one read transaction, so the record, the key events, their proofs and the checkpoint agree.
The bundle holds the record's publisher's key events (registrations, rotations, revocations) below the checkpoint's
tree size and any withdrawal of this record: what the verifier replays to decide whether the key could sign it. It
also holds the log's own key rotations below that size (docs/key-rotation.md), so that a verifier who pinned any of
the log's keys, old or new, can follow to the key that signed the checkpoint; its ``log_key`` is that key.
"""

from __future__ import annotations

from provenance.bundle.model import AnchorInfo, ProofBundle, make_entry
from provenance.errors import BundleError
from provenance.ledger import Ledger
from provenance.records_store import StoredCheckpoint
from provenance.service_events import LOG_KEY_ROTATION

__all__ = ["build_bundle"]

_KEY_KINDS = ("key-registration", "key-rotation", "key-revocation")


def build_bundle(ledger: Ledger, cid: str, *, tree_size: int | None = None) -> ProofBundle | None:
    """The bundle of record ``cid`` in the latest checkpoint (or the one signed at ``tree_size``); None when there
    is no such record. BundleError (``check = "checkpoint"``) when no such checkpoint covers the record yet."""
    log_id = ledger.config.log_id
    with ledger.reader.connect() as conn:
        rec = ledger.store.get(conn, cid)
        if rec is None:
            return None
        cp = (ledger.store.latest_checkpoint(conn, log_id) if tree_size is None
              else ledger.store.checkpoint_at(conn, log_id, tree_size))
        if cp is None and tree_size is not None:
            raise BundleError(f"the log has no checkpoint at tree size {tree_size}", check="checkpoint")
        if cp is None or rec.leaf_index >= cp.tree_size:
            raise BundleError(f"record {cid} (leaf {rec.leaf_index}) is not in a checkpoint yet: run provenance "
                              "anchor", check="checkpoint")
        events = [(ev.leaf_index, ev.cid, ev.event_bytes)
                  for ev in ledger.events.iter_events(conn, publisher=rec.publisher_id, below_leaf=cp.tree_size)
                  if ev.event.kind in _KEY_KINDS or ev.event.record_cid == cid]
        events += [(ev.leaf_index, ev.cid, ev.event_bytes)
                   for ev in ledger.events.iter_service_events(conn, kind=LOG_KEY_ROTATION, below_leaf=cp.tree_size)]
        record = make_entry(rec.cid, rec.record_bytes, rec.leaf_index,
                            ledger.log.inclusion_proof(conn, rec.leaf_index, cp.tree_size), cp.note)
        entries = tuple(make_entry(cid_, data, leaf, ledger.log.inclusion_proof(conn, leaf, cp.tree_size), cp.note)
                        for leaf, cid_, data in sorted(events))
        log_key = ledger.log_key_chain(conn).key_at(cp.tree_size).key.encode()
    return ProofBundle(log_key, record, entries, anchor_info(cp))


def anchor_info(cp: StoredCheckpoint) -> AnchorInfo | None:
    r = cp.anchor
    if r is None:
        return None
    return AnchorInfo(chain_id=r.chain_id, contract=r.contract_address, tx=r.tx_hash, block=r.block_number,
                      block_timestamp=r.block_timestamp, log_id=r.log_id, tree_size=r.tree_size, root=cp.root,
                      ephemeral=r.ephemeral)
