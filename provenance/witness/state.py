"""The witness's state machine, pure: which logs it trusts, the last checkpoint it cosigned for each, and the rule
that decides whether a submitted checkpoint may be cosigned (C2SP ``tlog-witness``).

A witness keeps, per log origin, the (size, root) of the latest checkpoint it cosigned (size 0 and the empty-tree
root before the first). It cosigns a new checkpoint only if

1. the origin is one it was configured for (else :class:`UnknownLogError`, 404);
2. a signature by a key it trusts for that origin verifies (else :class:`LogSignatureError`, 403);
3. the client's old size is at most the checkpoint's size (else :class:`MalformedRequestError`, 400);
4. the client's old size is the size it last cosigned (else :class:`OldSizeMismatchError` carrying that size, 409);
5. same size: same root (else :class:`RootConflictError`, 409 — the log forked); larger: the consistency proof from
   its last (size, root) to the new one verifies (else :class:`ConsistencyProofError`, 422).

So it refuses a fork (same size, another root), a smaller tree after a larger one (4, or 3) and a bad proof.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from provenance.errors import CheckpointError, ProofError
from provenance.translog.checkpoint import (
    Checkpoint,
    VerifierKey,
    parse_checkpoint_note,
    parse_note,
    parse_verifier_key,
    verify_checkpoint_note_with,
)
from provenance.translog.hashing import EMPTY_ROOT, HASH_SIZE
from provenance.translog.proofs import verify_consistency
from provenance.witness.errors import (
    ConsistencyProofError,
    LogSignatureError,
    MalformedRequestError,
    OldSizeMismatchError,
    RootConflictError,
    UnknownLogError,
)
from provenance.witness.protocol import AddCheckpointRequest

__all__ = ["Decision", "LogHead", "TrustedLog", "evaluate", "parse_log_option", "split_assignment", "trusted_logs"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LogHead:
    """The latest checkpoint a witness cosigned for one log: its size and root."""

    size: int
    root: bytes

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise ValueError(f"log head size must be a non-negative integer, got {self.size!r}")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise ValueError(f"log head root must be {HASH_SIZE} bytes")


EMPTY_HEAD = LogHead(0, EMPTY_ROOT)


@dataclass(frozen=True, slots=True)
class TrustedLog:
    """A log the witness cosigns for: its origin line and the verifier key(s) of its checkpoint signer."""

    origin: str
    keys: tuple[VerifierKey, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Decision:
    """What a valid submission comes to: the checkpoint to cosign (its exact note text) and the head to persist."""

    checkpoint: Checkpoint
    body: str
    head: LogHead
    changed: bool


def split_assignment(text: str, parse_right: Callable[[str], T], what: str) -> tuple[str, T]:
    """Split ``LEFT=RIGHT`` where RIGHT is a key parsed by ``parse_right``; LEFT may itself contain ``=``."""
    start = 0
    while (pos := text.find("=", start)) != -1:
        left, right = text[:pos].strip(), text[pos + 1 :].strip()
        start = pos + 1
        if not left:
            continue
        try:
            return left, parse_right(right)
        except CheckpointError:
            continue
    raise MalformedRequestError(f"{what} must be <name>=<verifier key>, got {text!r}")


def parse_log_option(text: str) -> tuple[str, VerifierKey]:
    """One ``--log ORIGIN=VKEY`` value."""
    return split_assignment(text, parse_verifier_key, "--log")


def trusted_logs(pairs: Iterable[tuple[str, VerifierKey]]) -> dict[str, TrustedLog]:
    """Group ``(origin, key)`` pairs into one :class:`TrustedLog` per origin (a log may have several keys)."""
    keys: dict[str, list[VerifierKey]] = {}
    for origin, key in pairs:
        keys.setdefault(origin, []).append(key)
    return {origin: TrustedLog(origin, tuple(ks)) for origin, ks in keys.items()}


def evaluate(logs: Mapping[str, TrustedLog], heads: Mapping[str, LogHead], req: AddCheckpointRequest) -> Decision:
    """Decide on one add-checkpoint request (see the module docstring); raise the refusal, or return the decision."""
    try:
        text, _sigs = parse_note(req.note)
        unverified, _ = parse_checkpoint_note(req.note)
    except CheckpointError as exc:
        raise MalformedRequestError(f"the checkpoint is not a valid signed checkpoint note: {exc}") from exc
    log = logs.get(unverified.origin)
    if log is None:
        raise UnknownLogError(f"this witness does not cosign for log {unverified.origin!r}")
    try:
        cp = verify_checkpoint_note_with(req.note, log.keys)
    except CheckpointError as exc:
        raise LogSignatureError(f"no trusted signature of log {log.origin!r} verifies: {exc}") from exc
    if req.old_size > cp.size:
        raise MalformedRequestError(f"old size {req.old_size} is larger than the checkpoint's size {cp.size}")
    head = heads.get(log.origin, EMPTY_HEAD)
    if req.old_size != head.size:
        raise OldSizeMismatchError(
            f"old size {req.old_size} is not the size this witness last cosigned for {log.origin!r} ({head.size})",
            current_size=head.size,
        )
    if cp.size == head.size:
        if req.proof:
            raise ConsistencyProofError(f"a proof from size {head.size} to the same size must be empty")
        if cp.root != head.root:
            raise RootConflictError(
                f"log {log.origin!r} forked: size {cp.size} was cosigned with root {head.root.hex()}, "
                f"this checkpoint has root {cp.root.hex()}"
            )
        return Decision(cp, text, head, changed=False)
    try:
        verify_consistency(head.size, cp.size, req.proof, head.root, cp.root)
    except ProofError as exc:
        raise ConsistencyProofError(
            f"checkpoint of size {cp.size} is not consistent with the cosigned size {head.size}: {exc}"
        ) from exc
    return Decision(cp, text, LogHead(cp.size, cp.root), changed=True)
