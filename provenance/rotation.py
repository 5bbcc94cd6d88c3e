"""Rotating the service's own keys: the log key and the chain anchorer (docs/key-rotation.md).

This is the storage side. The events and the rules every verifier applies to them are pure
(:mod:`provenance.service_events`); here they are signed, written to the log and put into effect:

* :func:`rotate_log_key`: a new log key is written beside the old one (``.next``); in ONE transaction the
  ``log-key-rotation`` event (signed by both keys) is appended at leaf ``r`` and the *transition checkpoint* of size
  ``r + 1`` is stored, signed by the new key and the old one; then the new key file replaces the old (the retired
  private key is gone; its public half stays in the log). With witnesses configured the transition checkpoint is
  then put to them.
* :func:`rotate_anchorer`: the contract's owner adds the new account and removes the old one, the
  ``anchorer-rotation`` event (both addresses, both transactions, signed by the log key) is appended, and the new
  account's key becomes the keyring's anchorer key, which the service uses from then on.
"""

from __future__ import annotations

from dataclasses import dataclass

from provenance.cid import cid_for_bytes
from provenance.errors import (
    AnchorError,
    IntegrityError,
    InvalidInputError,
    LogKeyChangedError,
    ReplayError,
    WitnessQuorumError,
)
from provenance.ledger import Ledger
from provenance.logging import get_logger
from provenance.service_events import (
    ANCHORER_ROTATION,
    AnchorerRotation,
    LogKey,
    anchorer_rotation,
    log_key_rotation,
)
from provenance.translog import Checkpoint, sign_checkpoint
from provenance.translog.checkpoint import NoteSignature, key_id

__all__ = ["AnchorerRotated", "LogKeyRotated", "rotate_anchorer", "rotate_log_key", "transition_note"]

log = get_logger(__name__)


@dataclass(frozen=True)
class LogKeyRotated:
    old: LogKey
    new: LogKey
    cid: str
    leaf_index: int
    transition_size: int
    witness_error: str | None = None  # witnesses configured but no quorum for the transition checkpoint (yet)


@dataclass(frozen=True)
class AnchorerRotated:
    old: str
    new: str
    add_tx: str
    remove_tx: str
    cid: str | None  # None: an interrupted rotation was only finished (its event was already in the log)
    leaf_index: int | None
    chain_id: int
    contract: str


def transition_note(cp: Checkpoint, key_name: str, new, old) -> str:  # type: ignore[no-untyped-def]
    """The checkpoint note signed by the new key, then by the old one (C2SP signed notes carry several)."""
    note = sign_checkpoint(cp, key_name, new)
    return note + NoteSignature(key_name, key_id(key_name, old.public_key()), old.sign(cp.body().encode())).line()


def _put(ledger: Ledger, data: bytes) -> str:
    cid = cid_for_bytes(data)
    got = ledger.blockstore.put(data)
    if got != cid:
        raise IntegrityError(f"block store returned CID {got}, expected {cid}")
    return cid


def rotate_log_key(ledger: Ledger) -> LogKeyRotated:
    """Replace the log key (see the module docstring). Nothing changes unless the log entry commits."""
    cfg = ledger.config
    name = cfg.log_key_name
    old = ledger.log_signing_key()  # also finishes a rotation a crash interrupted
    new = ledger.keyring.stage_service_key(name)
    event = log_key_rotation(cfg.origin, name, old, new)
    data = event.to_bytes()
    cid = _put(ledger, data)
    with ledger.engine.begin() as conn:
        chain = ledger.log_key_chain(conn)
        if not chain.current.key.same(old.public_key()):
            raise LogKeyChangedError("another rotation of the log key committed meanwhile: nothing was changed")
        leaf = ledger.log.size(conn)
        chain.check(event, leaf)
        appended = ledger.log.append(conn, cid)
        ledger.events.insert_service_event(conn, cid, appended.index, event, data)
        size = appended.index + 1
        root = ledger.log.root(conn, size)
        ledger.store.add_checkpoint(conn, size, root, transition_note(Checkpoint(cfg.origin, size, root), name,
                                                                      new, old))
    ledger.keyring.commit_service_key(name)
    log.info("log_key.rotated", old=event.old_key.label, new=event.new_key.label, cid=cid, leaf_index=appended.index)
    witness_error = None
    if ledger.witnesses is not None:
        try:
            ledger.checkpoint()  # the stored transition checkpoint, put to the witnesses for their cosignatures
        except WitnessQuorumError as exc:
            witness_error = str(exc)
    return LogKeyRotated(event.old_key, event.new_key, cid, appended.index, size, witness_error)


def append_anchorer_rotation(ledger: Ledger, event: AnchorerRotation) -> tuple[str, int]:
    """Append an anchorer-rotation event, checked against the log key in force at its leaf; (CID, leaf)."""
    data = event.to_bytes()
    cid = _put(ledger, data)
    with ledger.engine.begin() as conn:
        if ledger.events.has_cid(conn, cid):
            raise ReplayError(f"service event {cid} is already in the log")
        leaf = ledger.log.size(conn)
        event.verify_signature(ledger.log_key_chain(conn).public_key_at(leaf))
        appended = ledger.log.append(conn, cid)
        ledger.events.insert_service_event(conn, cid, appended.index, event, data)
    log.info("anchorer.rotated", old=event.old_anchorer, new=event.new_anchorer, cid=cid, leaf_index=appended.index)
    return cid, appended.index


def logged_anchorer_rotations(ledger: Ledger) -> list[tuple[int, AnchorerRotation]]:
    with ledger.reader.connect() as conn:
        out = []
        for ev in ledger.events.iter_service_events(conn, kind=ANCHORER_ROTATION):
            event = ev.parse()
            assert isinstance(event, AnchorerRotation)
            out.append((ev.leaf_index, event))
    return out


def rotate_anchorer(ledger: Ledger, *, new_key: str | None = None, owner_key: str | None = None,
                    owner_address: str | None = None, fund_wei: int = 0) -> AnchorerRotated:
    """Replace the account that anchors (see the module docstring). ``new_key``: the new account's hex key
    (default: a pending one from an interrupted run, else a new one). The contract's owner signs the two
    transactions: ``owner_key`` (hex), or ``owner_address`` (an account the node unlocks), else the current
    anchorer (the deployer owns the contract). ``fund_wei``: sent by the owner to the new account for its gas."""
    from eth_account import Account

    from provenance.anchor.evm import EvmAnchor

    backend = ledger.anchor_backend
    if not isinstance(backend, EvmAnchor) or backend.ephemeral:
        raise AnchorError("rotating the anchorer needs a real chain (PROVENANCE_CHAIN_RPC_URL): an in-process EVM "
                          "ends with its process")
    keyring = ledger.keyring
    pending = keyring.pending_anchorer_key()
    if new_key is None and pending is not None:
        finished = _finish_interrupted(ledger, backend, pending)
        if finished is not None:
            return finished
    new_key = new_key or pending or Account.create().key.to_0x_hex()
    newcomer = backend.with_sender(private_key=new_key)  # checks the key before anything is sent
    old, new = backend.sender, newcomer.sender
    if old.lower() == new.lower():
        raise InvalidInputError(f"the new anchorer key is the current one ({old})")
    if owner_key is not None:
        owner = backend.with_sender(private_key=owner_key)
    elif owner_address is not None:
        owner = backend.with_sender(address=owner_address)
    else:
        owner = backend
    actual = owner.owner()
    if actual.lower() != owner.sender.lower():
        raise AnchorError(f"{owner.sender} is not the contract's owner ({actual}): give the owner's key "
                          "(--owner-key-file) or unlocked address (--owner)")
    keyring.stage_anchorer_key(new_key)  # before any transaction: the key the contract will trust is never lost
    if fund_wei:
        owner.send_value(new, fund_wei)
    add_tx = owner.add_anchorer(new)
    remove_tx = owner.remove_anchorer(old)
    event = anchorer_rotation(ledger.config.origin, chain_id=backend.chain_id, contract=backend.contract_address,
                              old_anchorer=old, new_anchorer=new, add_tx=add_tx, remove_tx=remove_tx,
                              log_key=ledger.log_signing_key())
    cid, leaf = append_anchorer_rotation(ledger, event)
    keyring.commit_anchorer_key()
    ledger.reset_anchor_backend()
    return AnchorerRotated(old, new, add_tx, remove_tx, cid, leaf, backend.chain_id, backend.contract_address)


def _finish_interrupted(ledger: Ledger, backend, pending: str) -> AnchorerRotated | None:  # type: ignore[no-untyped-def]
    """A pending anchorer key that the log already names as the new anchorer (the run stopped after logging it):
    only the key file is left to move into place."""
    from eth_account import Account

    address = Account.from_key(pending).address
    mine = [(leaf, r) for leaf, r in logged_anchorer_rotations(ledger)
            if r.chain_id == backend.chain_id and r.contract.lower() == backend.contract_address.lower()]
    if not mine or mine[-1][1].new_anchorer.lower() != address.lower():
        return None
    leaf, event = mine[-1]
    ledger.keyring.commit_anchorer_key()
    ledger.reset_anchor_backend()
    log.warning("anchorer.rotation_finished", new=address)
    return AnchorerRotated(event.old_anchorer, event.new_anchorer, str(event.body["add_tx"]),
                           str(event.body["remove_tx"]), None, leaf, event.chain_id, event.contract)
