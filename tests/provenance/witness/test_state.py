"""The witness state machine (pure), the add-checkpoint wire format, and the persisted, locked state."""

from __future__ import annotations

import json
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from provenance.translog.checkpoint import Checkpoint, encode_verifier_key, parse_verifier_key, sign_checkpoint
from provenance.translog.cosignature import WitnessSigner, verify_cosignature, add_cosignatures
from provenance.translog.hashing import EMPTY_ROOT
from provenance.translog.tree import MemoryMerkleLog
from provenance.witness.errors import (
    ConsistencyProofError,
    LogSignatureError,
    MalformedRequestError,
    OldSizeMismatchError,
    RootConflictError,
    UnknownLogError,
    WitnessStateError,
)
from provenance.witness.protocol import (
    AddCheckpointRequest,
    encode_add_checkpoint,
    parse_add_checkpoint,
    parse_size_body,
)
from provenance.witness.service import Witness
from provenance.witness.state import LogHead, evaluate, parse_log_option, trusted_logs
from provenance.witness.store import StateDir

ORIGIN = "example.com/log"


class Log:
    """A log: a Merkle tree and a checkpoint signing key."""

    def __init__(self, key: Ed25519PrivateKey | None = None, prefix: bytes = b"leaf") -> None:
        self.key = key or Ed25519PrivateKey.generate()
        self.tree = MemoryMerkleLog()
        self.prefix = prefix

    @property
    def vkey(self) -> str:
        return encode_verifier_key(ORIGIN, self.key.public_key())

    def grow(self, n: int) -> None:
        for _ in range(n):
            self.tree.append(self.prefix + str(self.tree.size).encode())

    def note(self, size: int | None = None) -> str:
        size = self.tree.size if size is None else size
        return sign_checkpoint(Checkpoint(ORIGIN, size, self.tree.root(size)), ORIGIN, self.key)

    def request(self, old: int, size: int | None = None) -> AddCheckpointRequest:
        size = self.tree.size if size is None else size
        proof = self.tree.consistency_proof(old, size) if 0 < old < size else []
        return AddCheckpointRequest(old, tuple(proof), self.note(size))


@pytest.fixture
def log() -> Log:
    lg = Log()
    lg.grow(5)
    return lg


def logs_for(*logs: Log) -> dict:  # type: ignore[type-arg]
    return trusted_logs((ORIGIN, parse_verifier_key(lg.vkey)) for lg in logs)


# --- the state machine ----------------------------------------------------------------------------------------------
def test_first_checkpoint_then_growth_with_proof(log: Log) -> None:
    d = evaluate(logs_for(log), {}, log.request(0))
    assert d.changed and d.head == LogHead(5, log.tree.root(5))
    heads = {ORIGIN: d.head}
    log.grow(6)
    d2 = evaluate(logs_for(log), heads, log.request(5))
    assert d2.changed and d2.head == LogHead(11, log.tree.root(11))
    assert d2.body == Checkpoint(ORIGIN, 11, log.tree.root(11)).body()


def test_same_checkpoint_again_is_cosigned_without_change(log: Log) -> None:
    heads = {ORIGIN: LogHead(5, log.tree.root(5))}
    d = evaluate(logs_for(log), heads, log.request(5))
    assert not d.changed and d.head == heads[ORIGIN]


def test_fork_same_size_other_root_is_refused(log: Log) -> None:
    fork = Log(log.key, prefix=b"other")
    fork.grow(5)
    heads = {ORIGIN: LogHead(5, log.tree.root(5))}
    with pytest.raises(RootConflictError, match="forked"):
        evaluate(logs_for(log), heads, fork.request(5))


def test_fork_larger_tree_not_extending_is_refused(log: Log) -> None:
    fork = Log(log.key, prefix=b"other")
    fork.grow(8)
    heads = {ORIGIN: LogHead(5, log.tree.root(5))}
    with pytest.raises(ConsistencyProofError, match="not consistent"):
        evaluate(logs_for(log), heads, fork.request(5))
    # Even with the real log's proof: it proves 5 -> 8 of the real tree, not of the fork.
    log.grow(3)
    req = AddCheckpointRequest(5, tuple(log.tree.consistency_proof(5, 8)), fork.note(8))
    with pytest.raises(ConsistencyProofError):
        evaluate(logs_for(log), heads, req)


def test_smaller_tree_after_larger_is_refused(log: Log) -> None:
    heads = {ORIGIN: LogHead(5, log.tree.root(5))}
    with pytest.raises(MalformedRequestError, match="larger than the checkpoint"):
        evaluate(logs_for(log), heads, AddCheckpointRequest(5, (), log.note(3)))
    with pytest.raises(OldSizeMismatchError) as exc:
        evaluate(logs_for(log), heads, log.request(0, 3))
    assert exc.value.current_size == 5


def test_old_size_mismatch_carries_current_size(log: Log) -> None:
    with pytest.raises(OldSizeMismatchError) as exc:
        evaluate(logs_for(log), {}, log.request(2))
    assert exc.value.current_size == 0
    heads = {ORIGIN: LogHead(3, log.tree.root(3))}
    with pytest.raises(OldSizeMismatchError) as exc:
        evaluate(logs_for(log), heads, log.request(0))
    assert exc.value.current_size == 3


def test_bad_proofs_are_refused(log: Log) -> None:
    heads = {ORIGIN: LogHead(3, log.tree.root(3))}
    good = log.request(3)
    assert evaluate(logs_for(log), heads, good).changed
    flipped = (bytes([good.proof[0][0] ^ 1]) + good.proof[0][1:],) + good.proof[1:]
    for proof in (flipped, good.proof[:-1], good.proof + (b"\x00" * 32,)):
        with pytest.raises(ConsistencyProofError):
            evaluate(logs_for(log), heads, AddCheckpointRequest(3, proof, good.note))
    with pytest.raises(ConsistencyProofError):  # old size 0 takes an empty proof
        evaluate(logs_for(log), {}, AddCheckpointRequest(0, (b"\x00" * 32,), log.note()))
    with pytest.raises(ConsistencyProofError):  # same size takes an empty proof
        evaluate(logs_for(log), {ORIGIN: LogHead(5, log.tree.root(5))},
                 AddCheckpointRequest(5, (b"\x00" * 32,), log.note()))


def test_unknown_origin_and_untrusted_signature(log: Log) -> None:
    stranger = Log()
    stranger.grow(5)
    with pytest.raises(LogSignatureError):
        evaluate(logs_for(log), {}, stranger.request(0))
    other_origin = sign_checkpoint(Checkpoint("other.example/log", 5, log.tree.root(5)), ORIGIN, log.key)
    with pytest.raises(UnknownLogError):
        evaluate(logs_for(log), {}, AddCheckpointRequest(0, (), other_origin))
    with pytest.raises(MalformedRequestError):
        evaluate(logs_for(log), {}, AddCheckpointRequest(0, (), "not a note\n"))


def test_a_log_may_have_several_trusted_keys(log: Log) -> None:
    rotated = Log()
    rotated.tree = log.tree
    both = trusted_logs([(ORIGIN, parse_verifier_key(log.vkey)), (ORIGIN, parse_verifier_key(rotated.vkey))])
    assert evaluate(both, {}, rotated.request(0)).changed


def test_log_option_parsing(log: Log) -> None:
    origin, key = parse_log_option(f"{ORIGIN}={log.vkey}")
    assert origin == ORIGIN and key.encode() == log.vkey
    origin, _ = parse_log_option(f"odd=origin/log={log.vkey}")
    assert origin == "odd=origin/log"
    for bad in (ORIGIN, f"={log.vkey}", f"{ORIGIN}=garbage"):
        with pytest.raises(MalformedRequestError):
            parse_log_option(bad)


# --- the wire format ------------------------------------------------------------------------------------------------
def test_request_round_trip(log: Log) -> None:
    req = log.request(3)
    body = encode_add_checkpoint(req.old_size, req.proof, req.note)
    assert body.startswith(b"old 3\n") and b"\n\n" + req.note.encode() in body
    assert parse_add_checkpoint(body) == req
    empty = encode_add_checkpoint(0, [], req.note)
    assert empty == b"old 0\n\n" + req.note.encode()
    assert parse_add_checkpoint(empty) == AddCheckpointRequest(0, (), req.note)


@pytest.mark.parametrize("body", [
    b"old 03\n\nx\n",                      # leading zero
    b"old -1\n\nx\n",
    b"new 3\n\nx\n",
    b"old 3\n",                             # no empty line
    b"old 3\n\n",                           # no note
    b"old 3\nnot base64!\n\nx\n",
    b"old 3\nAAAA\n\nx\n",                  # not 32 bytes
    b"old 3\n" + b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n" * 64 + b"\nx\n",  # 64 > 63 lines
    b"\xff\xfe\n\nx\n",
    b"old 99999999999999999999999\n\nx\n",  # over 64 bits
])
def test_malformed_requests(body: bytes) -> None:
    with pytest.raises(MalformedRequestError):
        parse_add_checkpoint(body)


def test_size_body() -> None:
    assert parse_size_body(b"42\n") == 42
    for bad in (b"42", b"042\n", b"x\n", b""):
        with pytest.raises(MalformedRequestError):
            parse_size_body(bad)


# --- persisted state and the service --------------------------------------------------------------------------------
def test_state_is_persisted_before_the_cosignature_is_returned(tmp_path, log: Log) -> None:  # type: ignore[no-untyped-def]
    signer = WitnessSigner("w.example/w", Ed25519PrivateKey.generate())
    witness = Witness(signer, logs_for(log), StateDir(tmp_path / "state"), clock=lambda: 1700000000.5)
    req = log.request(0)
    [sig] = witness.add_checkpoint(encode_add_checkpoint(req.old_size, req.proof, req.note))
    # When add_checkpoint returns, the file on disk already holds the new head.
    doc = json.loads((tmp_path / "state" / "state.json").read_text())
    assert doc["logs"][ORIGIN]["size"] == 5
    assert verify_cosignature(add_cosignatures(req.note, [sig]), signer.vkey()) == 1700000000
    assert oct(os.stat(tmp_path / "state" / "state.json").st_mode & 0o777) == "0o600"
    witness.close()
    # A new process (same directory) refuses the fork it would have refused before.
    again = Witness(signer, logs_for(log), StateDir(tmp_path / "state"))
    assert again.heads() == {ORIGIN: LogHead(5, log.tree.root(5))}
    fork = Log(log.key, prefix=b"fork")
    fork.grow(5)
    with pytest.raises(RootConflictError):
        again.add_checkpoint(encode_add_checkpoint(5, [], fork.note()))
    again.close()


def test_refusal_changes_nothing_on_disk(tmp_path, log: Log) -> None:  # type: ignore[no-untyped-def]
    signer = WitnessSigner("w.example/w", Ed25519PrivateKey.generate())
    witness = Witness(signer, logs_for(log), StateDir(tmp_path))
    witness.add_checkpoint(encode_add_checkpoint(0, [], log.note(3)))
    before = (tmp_path / "state.json").read_bytes()
    with pytest.raises(ConsistencyProofError):
        witness.add_checkpoint(encode_add_checkpoint(3, [b"\x00" * 32] * 2, log.note()))
    assert (tmp_path / "state.json").read_bytes() == before
    assert witness.heads()[ORIGIN].size == 3
    witness.close()


def test_state_directory_is_locked_and_corruption_stops_startup(tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = StateDir(tmp_path)
    with pytest.raises(WitnessStateError, match="in use"):
        StateDir(tmp_path)
    first.save({ORIGIN: LogHead(1, EMPTY_ROOT)})
    first.close()
    with StateDir(tmp_path) as again:
        assert again.heads == {ORIGIN: LogHead(1, EMPTY_ROOT)}
    (tmp_path / "state.json").write_text("{\"format\": \"provenance-witness-state/1\", \"logs\": {\"x\": {}}}")
    with pytest.raises(WitnessStateError, match="corrupt"):
        StateDir(tmp_path)
    (tmp_path / "state.json").write_text("garbage")
    with pytest.raises(WitnessStateError, match="corrupt"):
        StateDir(tmp_path)
