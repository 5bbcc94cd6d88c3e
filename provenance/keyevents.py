"""Key events: signed entries of the transparency log that say which key speaks for a publisher, and what it withdrew.

Four kinds, one envelope (``type`` = ``provenance-key-event/v1``), each signed over
``b"provenance-key-event-v1\\n" || JCS(event without its signature)``:

* ``key-registration``: a publisher name is bound to a first key, with its custody (``publisher``: the service
  never saw the private key; ``service``: a custodial key). Signed by the **operator** (the log's service key): the
  operator vouches for who the key belongs to, in public.
* ``key-rotation``: a new key replaces ``old_key_id``. Authority ``previous-key`` (signed by the old key: the
  normal case) or ``operator`` (the old key was lost; signed by the operator and marked so everyone can see it).
* ``key-revocation``: ``key_id`` stops speaking for the publisher from ``revoked_at`` on. Signed by one of the
  publisher's valid keys, or by the operator.
* ``record-withdrawal``: the publisher withdraws ``record_cid``. Signed by a valid key of the record's publisher.

:class:`KeyHistory` replays events in log order and refuses any that is not signed by who it must be, so the same
code decides at ingest, in ``audit`` and in the offline bundle verifier. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from provenance.canonical import canonical_json
from provenance.errors import KeyEventError, SignatureError, StatementError
from provenance.statements import key_id_for, parse_utc, sign_domain, utc_now, verify_domain

EVENT_TYPE = "provenance-key-event/v1"
EVENT_DOMAIN = b"provenance-key-event-v1\n"
KINDS = ("key-registration", "key-rotation", "key-revocation", "record-withdrawal")
CUSTODY = ("publisher", "service")
_COMMON = {"type", "event", "publisher", "issued_at", "signer", "signature"}
_FIELDS = {
    "key-registration": {"key", "custody"},
    "key-rotation": {"old_key_id", "key", "custody", "authority"},
    "key-revocation": {"key_id", "revoked_at", "reason"},
    "record-withdrawal": {"record_cid", "reason"},
}


def public_key_obj(key: Ed25519PublicKey) -> dict[str, str]:
    return {"key_id": key_id_for(key), "public_key": base64.b64encode(key.public_bytes_raw()).decode("ascii")}


def _public_key(obj: Any, where: str) -> Ed25519PublicKey:
    if not isinstance(obj, dict) or set(obj) != {"key_id", "public_key"}:
        raise KeyEventError(f"{where} must be {{key_id, public_key}}")
    try:
        raw = base64.b64decode(str(obj["public_key"]).encode("ascii"), validate=True)
        key = Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error, UnicodeEncodeError) as exc:
        raise KeyEventError(f"{where}.public_key is not a base64 Ed25519 public key: {exc}") from None
    if key_id_for(key) != obj["key_id"]:
        raise KeyEventError(f"{where}.key_id does not match its public key")
    return key


@dataclass(frozen=True)
class KeyEvent:
    """One signed key event. ``body`` holds every field but the signature (``signer`` included)."""

    body: dict[str, Any]
    signature: str

    @property
    def kind(self) -> str:
        return str(self.body["event"])

    @property
    def publisher(self) -> str:
        return str(self.body["publisher"])

    @property
    def signer_role(self) -> str:
        return str(self.body["signer"]["role"])

    @property
    def signer_key_id(self) -> str:
        return str(self.body["signer"]["key_id"])

    @property
    def issued_at(self) -> str:
        return str(self.body["issued_at"])

    @property
    def new_key(self) -> Ed25519PublicKey | None:
        return _public_key(self.body["key"], "key") if "key" in self.body else None

    @property
    def subject_key_id(self) -> str | None:
        """The key this event is about: the new key (registration/rotation) or the revoked one."""
        if "key" in self.body:
            return str(self.body["key"]["key_id"])
        return self.body.get("key_id")

    @property
    def record_cid(self) -> str | None:
        return self.body.get("record_cid")

    def to_obj(self) -> dict[str, Any]:
        return {**self.body, "signature": self.signature}

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_obj())

    def verify_signature(self, key: Ed25519PublicKey) -> None:
        if key_id_for(key) != self.signer_key_id:
            raise SignatureError(f"{self.kind} names signer {self.signer_key_id}, not {key_id_for(key)}")
        verify_domain(EVENT_DOMAIN, self.body, self.signature, key, f"{self.kind} of {self.publisher!r}")

    @classmethod
    def from_obj(cls, obj: Any) -> KeyEvent:
        if not isinstance(obj, dict):
            raise KeyEventError("key event must be a JSON object")
        kind = obj.get("event")
        if obj.get("type") != EVENT_TYPE or kind not in KINDS:
            raise KeyEventError(f"not a key event: type {obj.get('type')!r}, event {kind!r}")
        expected = _COMMON | _FIELDS[kind]
        if set(obj) != expected:
            raise KeyEventError(f"{kind} fields: missing {sorted(expected - set(obj))}, "
                                f"unexpected {sorted(set(obj) - expected)}")
        signer = obj["signer"]
        if not isinstance(signer, dict) or set(signer) != {"role", "key_id"} or \
                signer["role"] not in ("publisher", "operator") or not isinstance(signer["key_id"], str):
            raise KeyEventError("signer must be {role: publisher|operator, key_id: string}")
        for name in ("publisher", "issued_at", "signature"):
            if not isinstance(obj[name], str) or not obj[name]:
                raise KeyEventError(f"{kind}.{name} must be a non-empty string")
        try:
            parse_utc(obj["issued_at"])
            if kind == "key-revocation":
                parse_utc(obj["revoked_at"])
        except StatementError as exc:
            raise KeyEventError(f"{kind}: {exc}") from None
        if "key" in obj:
            _public_key(obj["key"], f"{kind}.key")
        if "custody" in obj and obj["custody"] not in CUSTODY:
            raise KeyEventError(f"{kind}.custody must be one of {CUSTODY}")
        if kind == "key-rotation" and obj["authority"] not in ("previous-key", "operator"):
            raise KeyEventError("key-rotation.authority must be previous-key or operator")
        for name in ("reason", "record_cid", "key_id", "old_key_id"):
            if name in obj and not isinstance(obj[name], str):
                raise KeyEventError(f"{kind}.{name} must be a string")
        body = {k: v for k, v in obj.items() if k != "signature"}
        return cls(body, obj["signature"])


def make_event(kind: str, publisher: str, signer: Ed25519PrivateKey, *, role: str, issued_at: str | None = None,
               **fields: Any) -> KeyEvent:
    """Build and sign an event (the client, the CLI and the ledger's custodial path all use this)."""
    body: dict[str, Any] = {"type": EVENT_TYPE, "event": kind, "publisher": publisher,
                            "issued_at": issued_at or utc_now(),
                            "signer": {"role": role, "key_id": key_id_for(signer.public_key())}, **fields}
    event = KeyEvent(body, sign_domain(EVENT_DOMAIN, body, signer))
    return KeyEvent.from_obj(event.to_obj())  # the same checks a receiver makes


def registration(publisher: str, key: Ed25519PublicKey, custody: str, operator: Ed25519PrivateKey) -> KeyEvent:
    return make_event("key-registration", publisher, operator, role="operator", key=public_key_obj(key),
                      custody=custody)


def rotation(publisher: str, old_key_id: str, new_key: Ed25519PublicKey, custody: str, signer: Ed25519PrivateKey,
             *, by_operator: bool = False) -> KeyEvent:
    return make_event("key-rotation", publisher, signer, role="operator" if by_operator else "publisher",
                      old_key_id=old_key_id, key=public_key_obj(new_key), custody=custody,
                      authority="operator" if by_operator else "previous-key")


def revocation(publisher: str, key_id: str, signer: Ed25519PrivateKey, *, revoked_at: str | None = None,
               reason: str = "", by_operator: bool = False) -> KeyEvent:
    return make_event("key-revocation", publisher, signer, role="operator" if by_operator else "publisher",
                      key_id=key_id, revoked_at=revoked_at or utc_now(), reason=reason)


def withdrawal(publisher: str, record_cid: str, signer: Ed25519PrivateKey, *, reason: str = "") -> KeyEvent:
    return make_event("record-withdrawal", publisher, signer, role="publisher", record_cid=record_cid, reason=reason)


@dataclass
class KeyState:
    key_id: str
    public_key: Ed25519PublicKey
    custody: str
    added_leaf: int
    authority: str  # "operator-registration", "previous-key" or "operator"
    retired_leaf: int | None = None  # rotated away at this leaf
    revoked_leaf: int | None = None
    revoked_at: str | None = None

    def valid_at(self, leaf: int) -> bool:
        return self.added_leaf < leaf and all(x is None or leaf < x for x in (self.retired_leaf, self.revoked_leaf))


@dataclass(frozen=True)
class Withdrawal:
    record_cid: str
    publisher: str
    leaf_index: int
    withdrawn_at: str
    reason: str


@dataclass
class KeyHistory:
    """The key state of every publisher, from replaying key events in log order. ``operator_key`` is the log's
    service key: it signs registrations, and rotations/revocations marked as the operator's. When the log key was
    rotated, ``operator_keys(leaf)`` gives the one in force at a leaf (``service_events.LogKeyChain``)."""

    operator_key: Ed25519PublicKey
    keys: dict[str, dict[str, KeyState]] = field(default_factory=dict)
    withdrawals: dict[str, Withdrawal] = field(default_factory=dict)
    operator_keys: Callable[[int], Ed25519PublicKey] | None = None

    def operator_at(self, leaf_index: int) -> Ed25519PublicKey:
        return self.operator_key if self.operator_keys is None else self.operator_keys(leaf_index)

    def apply(self, event: KeyEvent, leaf_index: int, *, record_publisher: str | None = None) -> None:
        """Check ``event`` (at ``leaf_index``) against the history so far and record it; KeyEventError (or
        SignatureError) naming what is wrong otherwise. ``record_publisher`` is the publisher of the record a
        withdrawal names (the caller reads it from the log)."""
        pub, kind = event.publisher, event.kind
        keys = self.keys.get(pub, {})
        if event.signer_role == "operator":
            if kind == "record-withdrawal":
                raise KeyEventError("a withdrawal must be signed by the publisher, not the operator")
            event.verify_signature(self.operator_at(leaf_index))
        else:
            signer = keys.get(event.signer_key_id)
            if signer is None:
                raise KeyEventError(f"{kind}: signer {event.signer_key_id} is not a key of publisher {pub!r}")
            if not signer.valid_at(leaf_index):
                raise KeyEventError(f"{kind}: signer key {signer.key_id} of {pub!r} was revoked or rotated away")
            event.verify_signature(signer.public_key)
        if kind == "key-registration":
            if event.signer_role != "operator":
                raise KeyEventError("a key registration must be signed by the operator")
            if keys:
                raise KeyEventError(f"publisher {pub!r} is already registered (rotate its key instead)")
            new = event.new_key
            assert new is not None
            self.keys[pub] = {key_id_for(new): KeyState(key_id_for(new), new, event.body["custody"], leaf_index,
                                                        "operator-registration")}
        elif kind == "key-rotation":
            old = keys.get(event.body["old_key_id"])
            if old is None or not old.valid_at(leaf_index):
                raise KeyEventError(f"key-rotation: {event.body['old_key_id']} is not a valid key of {pub!r}")
            if event.body["authority"] == "previous-key" and (
                    event.signer_role != "publisher" or event.signer_key_id != old.key_id):
                raise KeyEventError("key-rotation by previous-key must be signed by the old key itself")
            if event.body["authority"] == "operator" and event.signer_role != "operator":
                raise KeyEventError("key-rotation by operator must be signed by the operator")
            new = event.new_key
            assert new is not None
            if key_id_for(new) in keys:
                raise KeyEventError(f"key-rotation: {key_id_for(new)} was already a key of {pub!r}")
            old.retired_leaf = leaf_index
            keys[key_id_for(new)] = KeyState(key_id_for(new), new, event.body["custody"], leaf_index,
                                             event.body["authority"])
        elif kind == "key-revocation":
            target = keys.get(event.body["key_id"])
            if target is None:
                raise KeyEventError(f"key-revocation: {event.body['key_id']} is not a key of {pub!r}")
            if target.revoked_leaf is not None:
                raise KeyEventError(f"key-revocation: {target.key_id} is already revoked")
            if parse_utc(event.body["revoked_at"]) > parse_utc(event.issued_at):
                raise KeyEventError("key-revocation: revoked_at lies after the event was issued")
            target.revoked_leaf, target.revoked_at = leaf_index, event.body["revoked_at"]
        else:  # record-withdrawal
            cid = event.body["record_cid"]
            if record_publisher is None:
                raise KeyEventError(f"record-withdrawal: no record {cid} in the log before this event")
            if record_publisher != pub:
                raise KeyEventError(f"record-withdrawal: record {cid} belongs to {record_publisher!r}, not {pub!r}")
            if cid in self.withdrawals:
                raise KeyEventError(f"record-withdrawal: {cid} is already withdrawn")
            self.withdrawals[cid] = Withdrawal(cid, pub, leaf_index, event.issued_at, event.body["reason"])

    # --- questions ----------------------------------------------------------------------------------------------
    def key(self, publisher: str, key_id: str) -> KeyState | None:
        return self.keys.get(publisher, {}).get(key_id)

    def custody(self, publisher: str) -> str | None:
        """The custody of the publisher's newest key (None when unregistered)."""
        keys = list(self.keys.get(publisher, {}).values())
        return keys[-1].custody if keys else None

    def check_signer(self, publisher: str, key_id: str, leaf_index: int, *, signed_at: str | None = None) -> KeyState:
        """The key that may sign a record of ``publisher`` appended at ``leaf_index``; RevokedKeyError or
        KeyEventError otherwise. ``signed_at`` (the statement's time) must precede a revocation's ``revoked_at``."""
        from provenance.errors import RevokedKeyError

        state = self.key(publisher, key_id)
        if state is None:
            raise KeyEventError(f"key {key_id} was never registered to publisher {publisher!r} in the log")
        if state.added_leaf >= leaf_index:
            raise KeyEventError(f"key {key_id} was registered to {publisher!r} only after leaf {leaf_index}")
        if state.revoked_leaf is not None and state.revoked_leaf < leaf_index:
            raise RevokedKeyError(f"key {key_id} of {publisher!r} was revoked at {state.revoked_at} (leaf "
                                  f"{state.revoked_leaf})")
        if state.retired_leaf is not None and state.retired_leaf < leaf_index:
            raise RevokedKeyError(f"key {key_id} of {publisher!r} was rotated away at leaf {state.retired_leaf}")
        if signed_at is not None and state.revoked_at is not None and \
                parse_utc(signed_at) >= parse_utc(state.revoked_at):
            raise RevokedKeyError(f"key {key_id} of {publisher!r} signed at {signed_at}, after its revocation "
                                  f"time {state.revoked_at}")
        return state


def legacy_keys(table_keys: Iterable[tuple[str, str]], event_subjects: Iterable[tuple[str, str, str | None]],
                load: Callable[[str, str], Ed25519PublicKey]) -> dict[str, dict[str, KeyState]]:
    """The keys of publishers registered before key events were logged (a database of schema 0001, upgraded).

    ``table_keys``: ``(publisher, key id)`` rows of the record store; ``event_subjects``: ``(publisher, kind, subject
    key id)`` of every logged key event; ``load`` reads a public key. A publisher without a registration event is
    legacy, and its keys that no logged rotation introduced were there before the log knew keys: custodial, valid
    from leaf -1. Seeded before the replay, so the legacy publisher's later events (a rotation) check against them."""
    events = list(event_subjects)
    registered = {pub for pub, kind, _key in events if kind == "key-registration"}
    introduced = {(pub, key) for pub, kind, key in events if kind in ("key-registration", "key-rotation")}
    out: dict[str, dict[str, KeyState]] = {}
    for pub, key_id in table_keys:
        if pub not in registered and (pub, key_id) not in introduced:
            out.setdefault(pub, {})[key_id] = KeyState(key_id, load(pub, key_id), "service", -1, "legacy")
    return out


def replay(operator_key: Ed25519PublicKey, events: Iterable[tuple[int, KeyEvent, str | None]], *,
           legacy: dict[str, dict[str, KeyState]] | None = None,
           operator_keys: Callable[[int], Ed25519PublicKey] | None = None) -> KeyHistory:
    """A history from ``(leaf_index, event, publisher of the withdrawn record or None)`` in log order, starting
    from the ``legacy`` keys (:func:`legacy_keys`); ``operator_keys``: the log key in force at a leaf."""
    history = KeyHistory(operator_key, operator_keys=operator_keys)
    for pub, keys in (legacy or {}).items():
        history.keys[pub] = {k: dataclasses.replace(state) for k, state in keys.items()}
    for leaf, event, record_publisher in events:
        history.apply(event, leaf, record_publisher=record_publisher)
    return history


def event_time(event: KeyEvent) -> datetime:
    return parse_utc(event.issued_at)
