"""The log side, without processes: configuration, the back-off of the anchoring loop, and how the client treats a
witness that answers wrongly (these answers cannot be had from our own witness, so a transport plays the witness)."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from provenance.api.anchoring import retry_wait_s
from provenance.config import Settings
from provenance.errors import ConfigError
from provenance.translog.checkpoint import Checkpoint, sign_checkpoint
from provenance.translog.cosignature import WitnessSigner, add_cosignatures
from provenance.witness.client import WitnessClient, request_cosignatures
from provenance.witness.cosigning import cosignature_count
from provenance.witness.endpoints import WitnessEndpoint, parse_witnesses
from provenance.witness.protocol import parse_add_checkpoint

W1 = WitnessSigner("w1.example/w", Ed25519PrivateKey.generate())
W2 = WitnessSigner("w2.example/w", Ed25519PrivateKey.generate())


def test_witness_list_parsing() -> None:
    [a, b] = parse_witnesses(f" http://127.0.0.1:7380={W1.vkey()} , https://w2.example/prefix/?x=1={W2.vkey()}")
    assert (a.url, a.key.encode()) == ("http://127.0.0.1:7380", W1.vkey())
    assert (b.url, b.label) == ("https://w2.example/prefix/?x=1", W2.key.label)
    assert parse_witnesses("") == () and parse_witnesses(None) == ()
    for bad in (f"ftp://x={W1.vkey()}", "http://x=garbage", f"{W1.vkey()}",
                f"http://a={W1.vkey()},http://b={W1.vkey()}"):
        with pytest.raises(ConfigError):
            parse_witnesses(bad)


def test_settings_refuse_an_unreachable_quorum_or_a_bad_list() -> None:
    s = Settings(witnesses=f"http://a={W1.vkey()},http://b={W2.vkey()}", witness_quorum=2)
    assert [e.label for e in s.witness_endpoints] == [W1.key.label, W2.key.label]
    assert Settings().witness_quorum == 0 and Settings().witness_endpoints == ()
    with pytest.raises(ValidationError, match="only 1 witness"):
        Settings(witnesses=f"http://a={W1.vkey()}", witness_quorum=2)
    with pytest.raises(ValidationError, match="PROVENANCE_WITNESSES"):
        Settings(witnesses="http://a=not-a-key", witness_quorum=1)


def test_anchor_loop_backs_off_after_missing_the_quorum() -> None:
    assert [retry_wait_s(n, 300.0) for n in range(0, 11)] == [300.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0,
                                                             300.0, 300.0]


@pytest.fixture
def checkpoint() -> tuple[Checkpoint, str]:
    cp = Checkpoint("example.com/log", 9, hashlib.sha256(b"r").digest())
    return cp, sign_checkpoint(cp, "example.com/log", Ed25519PrivateKey.generate())


def client_answering(handler) -> WitnessClient:  # type: ignore[no-untyped-def]
    return WitnessClient(WitnessEndpoint("http://w1.test", W1.key), timeout_s=1,
                         transport=httpx.MockTransport(handler))


def test_a_cosignature_that_does_not_verify_is_not_counted(checkpoint) -> None:  # type: ignore[no-untyped-def]
    cp, note = checkpoint
    other = Checkpoint(cp.origin, cp.size, b"\x01" * 32)
    answers = {
        "wrong checkpoint": W1.cosign(other.body(), 5).line(),
        "another witness": W2.cosign(cp.body(), 5).line(),
        "garbage": "hello\n",
    }
    for what, body in answers.items():
        client = client_answering(lambda _req, body=body: httpx.Response(200, text=body))
        answer = client.cosign(note, cp, 0, lambda old: [])
        assert answer.status == "invalid", what
        assert answer.signatures == ()
    good = client_answering(lambda _req: httpx.Response(200, text=W1.cosign(cp.body(), 5).line()))
    answer = good.cosign(note, cp, 0, lambda old: [])
    assert (answer.status, answer.timestamp, answer.known_size) == ("cosigned", 5, cp.size)


def test_409_is_followed_once_from_the_size_it_gives(checkpoint) -> None:  # type: ignore[no-untyped-def]
    cp, note = checkpoint
    seen: list[tuple[int, int]] = []

    def witness(req: httpx.Request) -> httpx.Response:
        parsed = parse_add_checkpoint(req.content)
        seen.append((parsed.old_size, len(parsed.proof)))
        if parsed.old_size != 4:
            return httpx.Response(409, content=b"4\n", headers={"content-type": "text/x.tlog.size"})
        return httpx.Response(200, text=W1.cosign(cp.body(), 7).line())

    answer = client_answering(witness).cosign(note, cp, 0, lambda old: [b"\x02" * 32] * old)
    assert answer.status == "cosigned" and seen == [(0, 0), (4, 4)]
    # A witness ahead of this checkpoint: refused, and its size is remembered.
    ahead = client_answering(lambda _r: httpx.Response(409, content=b"12\n", headers={"content-type":
                                                                                       "text/x.tlog.size"}))
    answer = ahead.cosign(note, cp, 0, lambda old: [])
    assert answer.status == "refused" and answer.known_size == 12 and "rolled back or forked" in answer.detail


def test_parallel_requests_and_the_count(checkpoint) -> None:  # type: ignore[no-untyped-def]
    cp, note = checkpoint
    up = client_answering(lambda _r: httpx.Response(200, text=W1.cosign(cp.body(), 3).line()))

    def refuse(_r: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    down = WitnessClient(WitnessEndpoint("http://w2.test", W2.key), timeout_s=1, transport=httpx.MockTransport(refuse))
    a1, a2 = request_cosignatures([up, down], note, cp, known_sizes={}, proof_from=lambda old: [])
    assert (a1.status, a2.status) == ("cosigned", "unreachable")
    full = add_cosignatures(note, a1.signatures)
    endpoints = [up.endpoint, down.endpoint]
    assert cosignature_count(full, endpoints) == 1 and cosignature_count(note, endpoints) == 0
