"""Service events: signed log entries about the service's own keys (docs/key-rotation.md).

Two kinds, one envelope (``type`` = ``provenance-service-event/v1``):

* ``log-key-rotation``: the log's key (it signs checkpoints, service attestations, lookup receipts and the operator's
  key events) is replaced. The event names the old and the new key (signed-note verifier key and the ``ed25519:``
  key id attestations name) and is signed by **both**, over ``b"provenance-log-key-rotation-v1\\n" || JCS(event
  without its signatures)``: the old key authorises the change, the new key proves it is held.
* ``anchorer-rotation``: the chain account that anchors checkpoints is replaced (owner's ``addAnchorer(new)`` then
  ``removeAnchorer(old)``). It names both addresses and both transactions, and is signed by the log key in force at
  its leaf, over ``b"provenance-anchorer-rotation-v1\\n" || JCS(event without its signature)``.

:class:`LogKeyChain` replays log-key rotations in log order. The key **in force** at leaf or tree size ``n`` is the
newest key whose rotation sits at a leaf ``< n``: a rotation at leaf ``r`` governs entries appended after it and
checkpoints that include it (size ``> r``). A checkpoint must be signed by the key in force at its size; the
*transition checkpoint* (size ``r + 1``, signed when the rotation is appended) carries the old key's signature too,
so a witness or verifier that pinned the old key can follow. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from provenance.canonical import canonical_json, parse_canonical_json
from provenance.errors import CheckpointError, InvalidRecordError, ServiceEventError, SignatureError, StatementError
from provenance.statements import key_id_for, parse_utc, sign_domain, utc_now, verify_domain
from provenance.translog.checkpoint import (
    Checkpoint,
    VerifierKey,
    encode_verifier_key,
    parse_checkpoint_note,
    parse_verifier_key,
    verify_checkpoint_note,
    verify_note,
)

__all__ = ["ANCHORER_ROTATION", "EVENT_TYPE", "LOG_KEY_ROTATION", "SERVICE_SUBJECT", "AnchorerRotation", "LogKey",
           "LogKeyChain", "LogKeyEpoch", "LogKeyRotation", "anchorer_in_force", "anchorer_rotation",
           "is_service_event", "log_key_rotation", "parse_service_event"]

EVENT_TYPE = "provenance-service-event/v1"
LOG_KEY_ROTATION = "log-key-rotation"
ANCHORER_ROTATION = "anchorer-rotation"
KINDS = (LOG_KEY_ROTATION, ANCHORER_ROTATION)
LOG_KEY_DOMAIN = b"provenance-log-key-rotation-v1\n"
ANCHORER_DOMAIN = b"provenance-anchorer-rotation-v1\n"
SERVICE_SUBJECT = "@log"
"""What the key-event table's ``publisher_id`` holds for a service event: no publisher name starts with ``@``."""

_COMMON = {"type", "event", "origin", "issued_at"}
_FIELDS = {
    LOG_KEY_ROTATION: {"old_key", "new_key", "signatures"},
    ANCHORER_ROTATION: {"chain_id", "contract", "old_anchorer", "new_anchorer", "add_tx", "remove_tx", "signer",
                        "signature"},
}
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}", re.ASCII)
_TX = re.compile(r"0x[0-9a-fA-F]{64}", re.ASCII)


# --- the log's keys ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogKey:
    """One key of the log: its signed-note verifier key (name, 4-byte note key ID, public key)."""

    vkey: VerifierKey

    @classmethod
    def of(cls, name: str, public_key: Ed25519PublicKey) -> LogKey:
        return cls(parse_verifier_key(encode_verifier_key(name, public_key)))

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.vkey.public_key

    @property
    def key_id(self) -> str:
        """``ed25519:<hex>``: what a service attestation's ``service_key_id`` names."""
        return key_id_for(self.vkey.public_key)

    @property
    def label(self) -> str:
        """``<name>+<hex note key ID>``, as signed-note tools name a key."""
        return f"{self.vkey.name}+{self.vkey.key_id.hex()}"

    def encode(self) -> str:
        return self.vkey.encode()

    def same(self, other: LogKey | Ed25519PublicKey) -> bool:
        pub = other.public_key if isinstance(other, LogKey) else other
        return pub.public_bytes_raw() == self.public_key.public_bytes_raw()

    def to_obj(self) -> dict[str, str]:
        return {"key_id": self.key_id, "vkey": self.encode()}

    @classmethod
    def from_obj(cls, obj: Any, where: str) -> LogKey:
        if not isinstance(obj, dict) or set(obj) != {"key_id", "vkey"}:
            raise ServiceEventError(f"{where} must be {{key_id, vkey}}")
        if not isinstance(obj["vkey"], str) or not isinstance(obj["key_id"], str):
            raise ServiceEventError(f"{where}.key_id and {where}.vkey must be strings")
        try:
            key = cls(parse_verifier_key(obj["vkey"]))
        except CheckpointError as exc:
            raise ServiceEventError(f"{where}.vkey: {exc}") from None
        if key.key_id != obj["key_id"]:
            raise ServiceEventError(f"{where}.key_id does not match its verifier key")
        return key


# --- the events -------------------------------------------------------------------------------------------------------
def _check_envelope(obj: Any) -> str:
    if not isinstance(obj, dict):
        raise ServiceEventError("service event must be a JSON object")
    kind = obj.get("event")
    if obj.get("type") != EVENT_TYPE or kind not in KINDS:
        raise ServiceEventError(f"not a service event: type {obj.get('type')!r}, event {kind!r}")
    expected = _COMMON | _FIELDS[kind]
    if set(obj) != expected:
        raise ServiceEventError(f"{kind} fields: missing {sorted(expected - set(obj))}, "
                                f"unexpected {sorted(set(obj) - expected)}")
    for name in ("origin", "issued_at"):
        if not isinstance(obj[name], str) or not obj[name]:
            raise ServiceEventError(f"{kind}.{name} must be a non-empty string")
    try:
        parse_utc(obj["issued_at"])
    except StatementError as exc:
        raise ServiceEventError(f"{kind}: {exc}") from None
    return str(kind)


@dataclass(frozen=True)
class LogKeyRotation:
    """The log's key replaced: ``body`` is every field but the signatures; ``old_signature`` authorises,
    ``new_signature`` proves possession of the new key."""

    body: dict[str, Any]
    old_signature: str
    new_signature: str

    kind = LOG_KEY_ROTATION

    @property
    def origin(self) -> str:
        return str(self.body["origin"])

    @property
    def issued_at(self) -> str:
        return str(self.body["issued_at"])

    @property
    def old_key(self) -> LogKey:
        return LogKey.from_obj(self.body["old_key"], "old_key")

    @property
    def new_key(self) -> LogKey:
        return LogKey.from_obj(self.body["new_key"], "new_key")

    def verify_signatures(self) -> None:
        """Both signatures, over the same domain-separated bytes; SignatureError naming the one that fails."""
        verify_domain(LOG_KEY_DOMAIN, self.body, self.old_signature, self.old_key.public_key,
                      "log-key rotation (the old key's authorisation)")
        verify_domain(LOG_KEY_DOMAIN, self.body, self.new_signature, self.new_key.public_key,
                      "log-key rotation (the new key's proof of possession)")

    def to_obj(self) -> dict[str, Any]:
        return {**self.body, "signatures": {"old": self.old_signature, "new": self.new_signature}}

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_obj())

    @classmethod
    def from_obj(cls, obj: Any) -> LogKeyRotation:
        if _check_envelope(obj) != LOG_KEY_ROTATION:
            raise ServiceEventError(f"not a {LOG_KEY_ROTATION}: {obj.get('event')!r}")
        old, new = LogKey.from_obj(obj["old_key"], "old_key"), LogKey.from_obj(obj["new_key"], "new_key")
        if old.same(new):
            raise ServiceEventError("log-key rotation names the same key as old and new")
        if old.vkey.name != new.vkey.name:
            raise ServiceEventError(f"log-key rotation changes the key name ({old.vkey.name!r} -> "
                                    f"{new.vkey.name!r}): the name is part of the log's configuration")
        sigs = obj["signatures"]
        if not isinstance(sigs, dict) or set(sigs) != {"old", "new"} or \
                not all(isinstance(v, str) and v for v in sigs.values()):
            raise ServiceEventError("log-key-rotation.signatures must be {old: base64, new: base64}")
        return cls({k: v for k, v in obj.items() if k != "signatures"}, sigs["old"], sigs["new"])


@dataclass(frozen=True)
class AnchorerRotation:
    """The chain account that anchors checkpoints replaced, signed by the log key in force at its leaf."""

    body: dict[str, Any]
    signature: str

    kind = ANCHORER_ROTATION

    @property
    def origin(self) -> str:
        return str(self.body["origin"])

    @property
    def issued_at(self) -> str:
        return str(self.body["issued_at"])

    @property
    def chain_id(self) -> int:
        return int(self.body["chain_id"])

    @property
    def contract(self) -> str:
        return str(self.body["contract"])

    @property
    def old_anchorer(self) -> str:
        return str(self.body["old_anchorer"])

    @property
    def new_anchorer(self) -> str:
        return str(self.body["new_anchorer"])

    @property
    def signer(self) -> str:
        return str(self.body["signer"])

    def verify_signature(self, log_key: Ed25519PublicKey) -> None:
        if key_id_for(log_key) != self.signer:
            raise SignatureError(f"anchorer rotation names signer {self.signer}, but the log key in force is "
                                 f"{key_id_for(log_key)}")
        verify_domain(ANCHORER_DOMAIN, self.body, self.signature, log_key, "anchorer rotation")

    def to_obj(self) -> dict[str, Any]:
        return {**self.body, "signature": self.signature}

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_obj())

    @classmethod
    def from_obj(cls, obj: Any) -> AnchorerRotation:
        if _check_envelope(obj) != ANCHORER_ROTATION:
            raise ServiceEventError(f"not an {ANCHORER_ROTATION}: {obj.get('event')!r}")
        chain_id = obj["chain_id"]
        if isinstance(chain_id, bool) or not isinstance(chain_id, int) or not 0 < chain_id < 2**64:
            raise ServiceEventError("anchorer-rotation.chain_id must be a positive integer")
        for name in ("contract", "old_anchorer", "new_anchorer"):
            if not isinstance(obj[name], str) or not _ADDRESS.fullmatch(obj[name]):
                raise ServiceEventError(f"anchorer-rotation.{name} must be a 0x-prefixed 20-byte address")
        for name in ("add_tx", "remove_tx"):
            if not isinstance(obj[name], str) or not _TX.fullmatch(obj[name]):
                raise ServiceEventError(f"anchorer-rotation.{name} must be a 0x-prefixed 32-byte transaction hash")
        if obj["old_anchorer"].lower() == obj["new_anchorer"].lower():
            raise ServiceEventError("anchorer rotation names the same account as old and new")
        for name in ("signer", "signature"):
            if not isinstance(obj[name], str) or not obj[name]:
                raise ServiceEventError(f"anchorer-rotation.{name} must be a non-empty string")
        return cls({k: v for k, v in obj.items() if k != "signature"}, obj["signature"])


ServiceEvent = LogKeyRotation | AnchorerRotation


def is_service_event(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("type") == EVENT_TYPE


def parse_service_event(data: bytes | dict[str, Any]) -> ServiceEvent:
    """A service event from its canonical bytes (or parsed object); ServiceEventError when it is anything else."""
    if isinstance(data, (bytes, bytearray)):
        try:
            obj = parse_canonical_json(bytes(data))
        except InvalidRecordError as exc:
            raise ServiceEventError(f"service event is not canonical JSON: {exc}") from None
    else:
        obj = data
    kind = _check_envelope(obj)
    event: ServiceEvent = LogKeyRotation.from_obj(obj) if kind == LOG_KEY_ROTATION else AnchorerRotation.from_obj(obj)
    if isinstance(data, (bytes, bytearray)) and event.to_bytes() != bytes(data):
        raise ServiceEventError("service event is not in its canonical form")
    return event


def log_key_rotation(origin: str, key_name: str, old: Ed25519PrivateKey, new: Ed25519PrivateKey, *,
                     issued_at: str | None = None) -> LogKeyRotation:
    """The rotation from ``old`` to ``new``, signed by both (what ``provenance log rotate-key`` appends)."""
    body: dict[str, Any] = {"type": EVENT_TYPE, "event": LOG_KEY_ROTATION, "origin": origin,
                            "issued_at": issued_at or utc_now(),
                            "old_key": LogKey.of(key_name, old.public_key()).to_obj(),
                            "new_key": LogKey.of(key_name, new.public_key()).to_obj()}
    event = LogKeyRotation(body, sign_domain(LOG_KEY_DOMAIN, body, old), sign_domain(LOG_KEY_DOMAIN, body, new))
    return LogKeyRotation.from_obj(event.to_obj())  # the checks a receiver makes


def anchorer_rotation(origin: str, *, chain_id: int, contract: str, old_anchorer: str, new_anchorer: str,
                      add_tx: str, remove_tx: str, log_key: Ed25519PrivateKey,
                      issued_at: str | None = None) -> AnchorerRotation:
    body: dict[str, Any] = {"type": EVENT_TYPE, "event": ANCHORER_ROTATION, "origin": origin,
                            "issued_at": issued_at or utc_now(), "chain_id": chain_id, "contract": contract,
                            "old_anchorer": old_anchorer, "new_anchorer": new_anchorer, "add_tx": add_tx,
                            "remove_tx": remove_tx, "signer": key_id_for(log_key.public_key())}
    event = AnchorerRotation(body, sign_domain(ANCHORER_DOMAIN, body, log_key))
    return AnchorerRotation.from_obj(event.to_obj())


# --- the chain of log keys --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogKeyEpoch:
    """A log key and the leaf of the rotation that brought it in (-1 for the log's first key)."""

    key: LogKey
    from_leaf: int
    rotation_cid: str | None = None

    @property
    def transition_size(self) -> int | None:
        """The size of the checkpoint that both this key and the one before it sign (None for the first key)."""
        return None if self.from_leaf < 0 else self.from_leaf + 1


@dataclass
class LogKeyChain:
    """Every key the log has had, in order, from replaying its log-key rotations."""

    origin: str
    key_name: str
    epochs: list[LogKeyEpoch] = field(default_factory=list)

    @classmethod
    def starting_with(cls, origin: str, key_name: str, public_key: Ed25519PublicKey) -> LogKeyChain:
        return cls(origin, key_name, [LogKeyEpoch(LogKey.of(key_name, public_key), -1)])

    @classmethod
    def replay(cls, origin: str, key_name: str, rotations: Iterable[tuple[int, LogKeyRotation, str | None]], *,
               current: Ed25519PublicKey | None = None) -> LogKeyChain:
        """The chain from ``(leaf, rotation, cid)`` in log order. It starts at the first rotation's old key (or
        ``current`` when there is none); an invalid rotation raises ServiceEventError / SignatureError."""
        items = list(rotations)
        if not items and current is None:
            raise ServiceEventError("a log key chain needs a first key")
        first = items[0][1].old_key.public_key if items else current
        assert first is not None
        chain = cls.starting_with(origin, key_name, first)
        for leaf, rotation, cid in items:
            chain.apply(rotation, leaf, cid)
        return chain

    @property
    def current(self) -> LogKeyEpoch:
        return self.epochs[-1]

    @property
    def rotations(self) -> int:
        return len(self.epochs) - 1

    def check(self, rotation: LogKeyRotation, leaf: int) -> None:
        """Everything that makes ``rotation`` at ``leaf`` valid as the next link; raises, changes nothing."""
        if rotation.origin != self.origin:
            raise ServiceEventError(f"log-key rotation is for log {rotation.origin!r}, not {self.origin!r}")
        old, new = rotation.old_key, rotation.new_key
        if old.vkey.name != self.key_name:
            raise ServiceEventError(f"log-key rotation names key {old.vkey.name!r}, the log's is {self.key_name!r}")
        if leaf <= self.current.from_leaf:
            raise ServiceEventError(f"log-key rotation at leaf {leaf} is not after the last one "
                                    f"(leaf {self.current.from_leaf})")
        if not old.same(self.current.key):
            raise ServiceEventError(f"log-key rotation names old key {old.label}, but the key in force at leaf "
                                    f"{leaf} is {self.current.key.label}: a rotation must be authorised by the "
                                    "key it replaces")
        if self.find(new.public_key) is not None:
            raise ServiceEventError(f"log-key rotation brings back key {new.label}, which the log already had")
        rotation.verify_signatures()

    def apply(self, rotation: LogKeyRotation, leaf: int, cid: str | None = None) -> LogKeyEpoch:
        self.check(rotation, leaf)
        epoch = LogKeyEpoch(rotation.new_key, leaf, cid)
        self.epochs.append(epoch)
        return epoch

    def key_at(self, n: int) -> LogKeyEpoch:
        """The key in force for the entry at leaf ``n`` and for the checkpoint of tree size ``n``."""
        for epoch in reversed(self.epochs):
            if epoch.from_leaf < n:
                return epoch
        return self.epochs[0]

    def public_key_at(self, n: int) -> Ed25519PublicKey:
        return self.key_at(n).key.public_key

    def find(self, key: Ed25519PublicKey | str) -> LogKeyEpoch | None:
        """The epoch of a public key, or of an ``ed25519:`` key id."""
        for epoch in self.epochs:
            if (epoch.key.key_id == key) if isinstance(key, str) else epoch.key.same(key):
                return epoch
        return None

    def _by_note_id(self, note_key_id: bytes) -> LogKeyEpoch | None:
        return next((e for e in self.epochs if e.key.vkey.key_id == note_key_id), None)

    def _previous(self, epoch: LogKeyEpoch) -> LogKeyEpoch | None:
        i = self.epochs.index(epoch)
        return self.epochs[i - 1] if i > 0 else None

    def _why_not(self, other: LogKeyEpoch, size: int) -> str:
        if other.from_leaf >= size:
            return f"not yet in force at size {size} (it takes over after leaf {other.from_leaf})"
        nxt = self.epochs[self.epochs.index(other) + 1]
        return f"retired by the rotation at leaf {nxt.from_leaf}, before size {size}"

    def verify_checkpoint(self, note: str | bytes, *, check_origin: bool = True) -> Checkpoint:
        """Verify a checkpoint note under the key in force at its size (CheckpointError otherwise). Any signature
        line by another of the log's keys is an error too, except the previous key's on the transition checkpoint;
        lines by keys the log never had (witnesses, strangers) are ignored, as signed-note verifiers do. With
        ``check_origin`` the note must be this log's."""
        cp, sigs = parse_checkpoint_note(note)
        epoch = self.key_at(cp.size)
        ours = [s for s in sigs if s.key_name == self.key_name]
        if not any(s.key_id == epoch.key.vkey.key_id for s in ours):
            for s in ours:
                other = self._by_note_id(s.key_id)
                if other is not None:
                    raise CheckpointError(f"checkpoint of size {cp.size} is signed by log key {other.key.label}, "
                                          f"which is {self._why_not(other, cp.size)}; the key in force is "
                                          f"{epoch.key.label}")
        verify_checkpoint_note(note, self.key_name, epoch.key.public_key, origin=self.origin if check_origin else None)
        for s in ours:
            other = self._by_note_id(s.key_id)
            if other is None or other is epoch:
                continue
            if other is self._previous(epoch) and cp.size == epoch.transition_size:
                verify_note(note, self.key_name, other.key.public_key)  # the transition's old-key line must verify
                continue
            raise CheckpointError(f"checkpoint of size {cp.size} also carries a signature by log key "
                                  f"{other.key.label}, which is {self._why_not(other, cp.size)}")
        return cp

    def to_obj(self) -> list[dict[str, Any]]:
        return [{"vkey": e.key.encode(), "key_id": e.key.key_id, "from_leaf": e.from_leaf,
                 "rotation_cid": e.rotation_cid} for e in self.epochs]


def anchorer_in_force(rotations: Iterable[tuple[int, AnchorerRotation]], chain_id: int, contract: str,
                      tree_size: int) -> str | None:
    """The account that should have anchored the checkpoint of ``tree_size`` on this contract, by the logged
    anchorer rotations (``(leaf, event)`` in log order): the newest one at a leaf ``< tree_size``, else the first
    one's old account; None when the log has no rotation for this contract (nothing to compare with)."""
    mine = [(leaf, r) for leaf, r in rotations if r.chain_id == chain_id and r.contract.lower() == contract.lower()]
    if not mine:
        return None
    before = [r for leaf, r in mine if leaf < tree_size]
    return before[-1].new_anchorer if before else mine[0][1].old_anchorer
