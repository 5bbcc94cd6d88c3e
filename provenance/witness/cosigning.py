"""Publishing a checkpoint only once a quorum of witnesses cosigned it (the log side of C2SP ``tlog-witness``).

:meth:`CheckpointWitnesses.publish` is what :meth:`provenance.ledger.Ledger.checkpoint` runs when a quorum is
configured. No database transaction is held while witnesses are asked (appends go on meanwhile):

1. read the tree size and root, and the size each witness last cosigned (``witness_sizes``);
2. sign the checkpoint note (Ed25519 is deterministic: the same note every time for the same tree);
3. ask every witness in parallel (:func:`~provenance.witness.client.request_cosignatures`), remember what each one
   taught us about its size, whatever the outcome;
4. with at least ``quorum`` verified cosignatures, store the note with the cosignature lines appended (the log's own
   signature still verifies: signed-note verifiers ignore lines by other keys); below it, store nothing and raise
   :class:`~provenance.errors.WitnessQuorumError` (the caller retries later; records appended meanwhile are safe in
   the log and go into the next checkpoint).

A checkpoint stored before witnesses were required (same tree size, no quorum yet) is put to the witnesses again,
and its note gains the cosignatures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import httpx

from provenance.errors import CosignatureError, LogError, WitnessQuorumError
from provenance.logging import get_logger
from provenance.translog.checkpoint import Checkpoint, parse_note, sign_checkpoint
from provenance.translog.cosignature import add_cosignatures, check_cosignatures
from provenance.witness.client import WitnessAnswer, WitnessClient, request_cosignatures
from provenance.witness.endpoints import WitnessEndpoint

if TYPE_CHECKING:
    from provenance.ledger import Ledger
    from provenance.records_store import StoredCheckpoint

__all__ = ["CheckpointWitnesses", "cosignature_count"]

log = get_logger(__name__)


def cosignature_count(note: str, endpoints: Sequence[WitnessEndpoint]) -> int:
    """How many of the configured witnesses have a valid cosignature on ``note``."""
    try:
        checks = check_cosignatures(note, [e.key for e in endpoints])
    except CosignatureError:
        return 0
    return sum(c.status == "valid" for c in checks)


class CheckpointWitnesses:
    """The witnesses this log asks, and how many cosignatures a checkpoint needs before it is published."""

    def __init__(self, endpoints: Sequence[WitnessEndpoint], quorum: int, *, timeout_s: float,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not 0 < quorum <= len(endpoints):
            raise ValueError(f"quorum must be between 1 and the {len(endpoints)} witnesses, got {quorum}")
        self.endpoints = tuple(endpoints)
        self.quorum = quorum
        self.clients = [WitnessClient(e, timeout_s=timeout_s, transport=transport) for e in self.endpoints]

    def close(self) -> None:
        for c in self.clients:
            c.close()

    def has_quorum(self, note: str) -> bool:
        return cosignature_count(note, self.endpoints) >= self.quorum

    def publish(self, ledger: Ledger) -> StoredCheckpoint:
        """Checkpoint the current tree with a quorum of cosignatures (see the module docstring)."""
        cfg = ledger.config
        with ledger.reader.connect() as conn:
            size = ledger.log.size(conn)
            latest = ledger.store.latest_checkpoint(conn, cfg.log_id)
            known = ledger.store.witness_sizes(conn)
            if size == 0:
                raise LogError("the log is empty: ingest something before checkpointing")
            same = latest is not None and latest.tree_size == size
            root = latest.root if same and latest is not None else ledger.log.root(conn, size)
        if same and latest is not None:
            if self.has_quorum(latest.note):
                return latest
            note = latest.note
        else:
            note = sign_checkpoint(Checkpoint(cfg.origin, size, root), cfg.log_key_name, ledger.log_signing_key())
        checkpoint = Checkpoint(cfg.origin, size, root)

        def proof_from(old_size: int) -> list[bytes]:
            with ledger.reader.connect() as c:
                return ledger.log.consistency_proof(c, old_size, size)

        answers = request_cosignatures(self.clients, note, checkpoint, known_sizes=known, proof_from=proof_from)
        learned = {a.endpoint.label: a.known_size for a in answers if a.known_size is not None}
        if learned:
            with ledger.engine.begin() as conn:
                for label, witness_size in learned.items():
                    ledger.store.set_witness_size(conn, label, witness_size)
        note = add_cosignatures(note, [s for a in answers if a.status == "cosigned" for s in a.signatures])
        got = cosignature_count(note, self.endpoints)
        if got < self.quorum:
            raise WitnessQuorumError(_quorum_message(size, got, self.quorum, answers))
        return self._store(ledger, size, root, note, got)

    def _store(self, ledger: Ledger, size: int, root: bytes, note: str, got: int) -> StoredCheckpoint:
        cfg = ledger.config
        with ledger.engine.begin() as conn:
            current = ledger.store.latest_checkpoint(conn, cfg.log_id)
            if current is not None and current.tree_size > size:
                return current  # another process published a larger tree meanwhile: that one is the latest
            if current is not None and current.tree_size == size:
                if current.root != root:
                    raise LogError(f"stored checkpoint {size} has root {current.root.hex()}, the log {root.hex()}")
                merged = add_cosignatures(current.note, parse_note(note)[1])
                ledger.store.replace_checkpoint_note(conn, size, merged)
            else:
                ledger.store.add_checkpoint(conn, size, root, note)
        log.info("checkpoint.witnessed", tree_size=size, root=root.hex(), cosignatures=got, quorum=self.quorum)
        with ledger.reader.connect() as conn:
            stored = ledger.store.latest_checkpoint(conn, cfg.log_id)
        assert stored is not None
        return stored


def _quorum_message(size: int, got: int, quorum: int, answers: Sequence[WitnessAnswer]) -> str:
    detail = "; ".join(f"{a.endpoint.label} at {a.endpoint.url}: {a.status} ({a.detail})" for a in answers)
    return (f"checkpoint of tree size {size} has {got} witness cosignature(s), the quorum is {quorum}: it is not "
            f"published or anchored (records are kept; retry later). {detail}")
