"""The log and three real witness processes (``provenance witness serve``) over loopback HTTP.

Quorum 2 of 3: all three cosign when up; one down still publishes; two down delay publication and lose nothing; a
forked log (same size, other root; or a smaller tree after a larger one) is refused by every witness; the 409 path
teaches the log a witness's size; a witness killed and restarted still refuses the fork; the status codes are the
spec's; and the audit rejects a checkpoint below the quorum or with a cosignature made with another key.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, text

from provenance.api.errors import status_for
from provenance.audit import audit_ledger
from provenance.config import Settings
from provenance.errors import WitnessQuorumError
from provenance.hashing import PHashHasher
from provenance.ledger import Ledger
from provenance.records import PublisherMetadata
from provenance.records_store import witness_sizes
from provenance.services import open_ledger
from provenance.translog import leaf_hash, record_leaf_data, verify_checkpoint_note, verify_inclusion
from provenance.translog.checkpoint import Checkpoint, parse_note, sign_checkpoint
from provenance.translog.cosignature import WitnessSigner, check_cosignatures, verify_cosignature
from provenance.translog.tree import MemoryMerkleLog
from provenance.witness.protocol import encode_add_checkpoint
from tests.provenance.witness.conftest import BIN, LOG_KEY_NAME, LogSlot, WitnessNet, clean_env, new_images

META = PublisherMetadata(title="witnessed")


def open_slot_ledger(slot: LogSlot, net: WitnessNet, *, database_url: str | None = None, quorum: int = 2) -> Ledger:
    settings = Settings(data_dir=slot.data_dir, log_origin=slot.origin, log_key_name=LOG_KEY_NAME,
                        database_url=database_url, witnesses=net.env_value, witness_quorum=quorum,
                        witness_timeout_s=5)
    return open_ledger(settings)


def ingest(ledger: Ledger, n: int, publisher: str = "acme") -> list[str]:
    phash = PHashHasher()
    return [ledger.ingest(d, publisher=publisher, metadata=META, hashes=(phash.hash_image(d),)).cid
            for d in new_images(n)]


def log_size(ledger: Ledger) -> int:
    with ledger.reader.connect() as conn:
        return ledger.log.size(conn)


def latest(ledger: Ledger):  # type: ignore[no-untyped-def]
    with ledger.reader.connect() as conn:
        return ledger.store.latest_checkpoint(conn, ledger.config.log_id)


def statuses(note: str, net: WitnessNet) -> list[str]:
    return [c.status for c in check_cosignatures(note, net.keys)]


def post(witness_url: str, old: int, proof: list[bytes], note: str) -> httpx.Response:
    return httpx.post(witness_url + "/add-checkpoint", content=encode_add_checkpoint(old, proof, note), timeout=10)


@pytest.fixture
def ledger(slot: LogSlot, witness_net: WitnessNet, ledger_db_url: str | None):  # type: ignore[no-untyped-def]
    led = open_slot_ledger(slot, witness_net, database_url=ledger_db_url)
    led.add_publisher("acme")
    yield led
    led.close()


@pytest.fixture
def sqlite_ledger(slot: LogSlot, witness_net: WitnessNet):  # type: ignore[no-untyped-def]
    led = open_slot_ledger(slot, witness_net)
    led.add_publisher("acme")
    yield led
    led.close()


def test_all_three_cosign_and_one_down_still_publishes(ledger, witness_net) -> None:  # type: ignore[no-untyped-def]
    ingest(ledger, 3)
    cp = ledger.anchor()
    assert cp.tree_size == log_size(ledger) and cp.anchor is not None
    assert statuses(cp.note, witness_net) == ["valid"] * 3
    # The stored (published) note is the log's signed note plus the cosignature lines: the log signature verifies.
    assert latest(ledger).note == cp.note
    assert verify_checkpoint_note(cp.note, LOG_KEY_NAME, ledger.log_public_key()).size == cp.tree_size
    with ledger.reader.connect() as conn:
        assert ledger.store.witness_sizes(conn) == {w.key.label: cp.tree_size for w in witness_net.witnesses}

    witness_net.witnesses[2].kill()
    ingest(ledger, 2)
    cp2 = ledger.anchor()
    assert cp2.tree_size == cp.tree_size + 2 and cp2.anchor is not None
    assert statuses(cp2.note, witness_net) == ["valid", "valid", "absent"]


def test_witnesses_down_delay_publication_and_lose_nothing(sqlite_ledger, witness_net) -> None:  # type: ignore[no-untyped-def]
    ledger = sqlite_ledger
    ingest(ledger, 2)
    first = ledger.checkpoint()
    w0, w1, _ = witness_net.witnesses
    w0.kill()
    w1.kill()
    cids = ingest(ledger, 3)  # appends go on while the witnesses are down
    with pytest.raises(WitnessQuorumError, match="1 witness cosignature") as exc:
        ledger.anchor()
    assert str(exc.value).count("unreachable") == 2 and "quorum is 2" in str(exc.value)
    assert status_for(exc.value) == (503, "witnesses_unavailable")
    assert latest(ledger).tree_size == first.tree_size  # nothing published, nothing anchored
    assert log_size(ledger) == first.tree_size + 3
    w0.start()
    w0.wait_ready()
    cp = ledger.anchor()  # the retry, once a second witness is back
    assert cp.tree_size == first.tree_size + 3 and cp.anchor is not None
    assert statuses(cp.note, witness_net) == ["valid", "absent", "valid"]
    with ledger.reader.connect() as conn:
        for cid in cids:
            index = ledger.log.index_of(conn, cid)
            proof = ledger.log.inclusion_proof(conn, index, cp.tree_size)
            verify_inclusion(index, cp.tree_size, leaf_hash(record_leaf_data(cid)), proof, cp.root)


def test_forked_log_is_refused_by_every_witness(sqlite_ledger, slot, witness_net, tmp_path) -> None:  # type: ignore[no-untyped-def]
    honest = sqlite_ledger
    ingest(honest, 3)
    cp = honest.checkpoint()
    assert statuses(cp.note, witness_net) == ["valid"] * 3

    def fork(name: str, images: int) -> Ledger:
        # Same origin, same log key (same data directory), another history in another database.
        led = open_slot_ledger(slot, witness_net, database_url=f"sqlite:///{tmp_path / name}.sqlite3")
        led.add_publisher(name)
        ingest(led, images, publisher=name)
        return led

    same_size = fork("mallory", 3)
    smaller = fork("trudy", 1)
    bigger = fork("eve", 5)
    try:
        assert log_size(same_size) == cp.tree_size and log_size(smaller) < cp.tree_size
        for forked, why in ((same_size, "(409: log"), (smaller, "larger than this checkpoint"), (bigger, "(422: ")):
            with pytest.raises(WitnessQuorumError) as exc:
                forked.checkpoint()
            message = str(exc.value)
            assert "0 witness cosignature" in message and message.count(": refused (") == 3, message
            assert message.count(why) == 3, message
            assert latest(forked) is None
        # The same-size fork, sent straight to each witness: 409 Conflict, and not a size answer.
        fork_cp = Checkpoint(slot.origin, cp.tree_size, same_size.log.root(same_size.engine.connect(), cp.tree_size))
        fork_note = sign_checkpoint(fork_cp, LOG_KEY_NAME, slot.log_key)
        for w in witness_net.witnesses:
            resp = post(w.url, cp.tree_size, [], fork_note)
            assert resp.status_code == 409 and "forked" in resp.text
            assert not resp.headers["content-type"].startswith("text/x.tlog.size")
        # The honest log goes on.
        ingest(honest, 1)
        assert statuses(honest.checkpoint().note, witness_net) == ["valid"] * 3
    finally:
        for led in (same_size, smaller, bigger):
            led.close()


def test_409_teaches_the_log_each_witness_size(sqlite_ledger, witness_net) -> None:  # type: ignore[no-untyped-def]
    ledger = sqlite_ledger
    ingest(ledger, 2)
    cp = ledger.checkpoint()
    resp = post(witness_net.witnesses[0].url, 0, [], cp.note)
    assert resp.status_code == 409
    assert resp.headers["content-type"] == "text/x.tlog.size" and resp.content == f"{cp.tree_size}\n".encode()
    with ledger.engine.begin() as conn:  # the log forgets what it knew (a database restored from a backup)
        conn.execute(delete(witness_sizes))
    ingest(ledger, 2)
    cp2 = ledger.checkpoint()  # old 0 -> 409 with the witness's size -> retried with the proof from that size
    assert statuses(cp2.note, witness_net) == ["valid"] * 3
    with ledger.reader.connect() as conn:
        assert set(ledger.store.witness_sizes(conn).values()) == {cp2.tree_size}


def test_restarted_witness_remembers_and_still_refuses_the_fork(sqlite_ledger, slot, witness_net) -> None:  # type: ignore[no-untyped-def]
    ledger = sqlite_ledger
    ingest(ledger, 3)
    cp = ledger.checkpoint()
    w0 = witness_net.witnesses[0]
    w0.kill()
    w0.start()
    w0.wait_ready()
    fork_note = sign_checkpoint(Checkpoint(slot.origin, cp.tree_size, b"\x66" * 32), LOG_KEY_NAME, slot.log_key)
    resp = post(w0.url, cp.tree_size, [], fork_note)
    assert resp.status_code == 409 and "forked" in resp.text
    resp = post(w0.url, 0, [], fork_note)
    assert resp.status_code == 409 and resp.content == f"{cp.tree_size}\n".encode()
    ingest(ledger, 1)
    assert statuses(ledger.checkpoint().note, witness_net) == ["valid"] * 3


def test_status_codes_follow_the_spec(slot, witness_net) -> None:  # type: ignore[no-untyped-def]
    url = witness_net.witnesses[1].url
    tree = MemoryMerkleLog([b"a", b"b", b"c", b"d", b"e"])

    def note(size: int, key=None, origin=None) -> str:  # type: ignore[no-untyped-def]
        return sign_checkpoint(Checkpoint(origin or slot.origin, size, tree.root(size)), LOG_KEY_NAME,
                               key or slot.log_key)

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    assert post(url, 0, [], note(3, origin="nobody.test/log")).status_code == 404
    assert post(url, 0, [], note(3, key=Ed25519PrivateKey.generate())).status_code == 403
    assert httpx.post(url + "/add-checkpoint", content=b"old 01\n\nx\n").status_code == 400
    assert post(url, 4, [], note(3)).status_code == 400  # old size above the checkpoint's
    ok = post(url, 0, [], note(3))
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/plain")
    assert ok.text.startswith("\u2014 w1.news.test/witness ") and ok.text.endswith("\n")
    # As the spec suggests: concatenate the answer to the note and verify with the witness's key.
    assert verify_cosignature(note(3) + ok.text, witness_net.witnesses[1].key) > 1_700_000_000
    bad_proof = [b"\x00" * 32] * len(tree.consistency_proof(3, 5))
    assert post(url, 3, bad_proof, note(5)).status_code == 422
    assert post(url, 3, tree.consistency_proof(3, 5), note(5)).status_code == 200
    assert httpx.post(url + "/add-checkpoint", content=b"x" * 70_000).status_code == 413
    # keygen wrote the key readable by its owner only, and printed the verifier key the witness serves.
    key_path = witness_net.witnesses[1].key_path
    assert oct(key_path.stat().st_mode & 0o777) == "0o600"
    assert httpx.get(url + "/").text.startswith(f"witness {witness_net.witnesses[1].vkey}\n")


def run_audit_cli(slot: LogSlot, net: WitnessNet) -> subprocess.CompletedProcess[str]:
    env = clean_env() | {"PROVENANCE_LOG_ORIGIN": slot.origin, "PROVENANCE_WITNESSES": net.env_value,
                         "PROVENANCE_WITNESS_QUORUM": "2"}
    return subprocess.run([str(BIN), "--data-dir", str(slot.data_dir), "audit", "--json"], capture_output=True,
                          text=True, env=env, timeout=300)


def test_audit_rejects_below_quorum_and_a_cosignature_by_another_key(sqlite_ledger, slot, witness_net) -> None:  # type: ignore[no-untyped-def]
    ledger = sqlite_ledger
    ingest(ledger, 2)
    cp = ledger.checkpoint()

    def cosignature_failures() -> list[tuple[str, str]]:
        report = audit_ledger(ledger, log_public_key=ledger.log_public_key(), anchor=None,
                              witnesses=[w.vkey for w in witness_net.witnesses], witness_quorum=2)
        return [(f.check, f.message) for f in report.failures if f.check.startswith("checkpoint.")]

    assert cosignature_failures() == []

    text_, sigs = parse_note(cp.note)
    log_line, w0_line, w1_line, w2_line = (s.line() for s in sigs)

    def store(note: str) -> None:
        with ledger.engine.begin() as conn:
            conn.execute(text("UPDATE checkpoints SET note = :n WHERE tree_size = :s"), {"n": note, "s": cp.tree_size})

    store(text_ + "\n" + log_line + w0_line)  # two cosignatures dropped: below the quorum
    assert [c for c, _ in cosignature_failures()] == ["checkpoint.quorum"]
    out = run_audit_cli(slot, witness_net)
    assert out.returncode == 1
    assert [f["check"] for f in json.loads(out.stdout)["failures"] if f["check"].startswith("checkpoint.")] == [
        "checkpoint.quorum"]

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    impostor = WitnessSigner(witness_net.witnesses[1].key.name, Ed25519PrivateKey.generate())
    forged = impostor.cosign(text_, 1_800_000_000).line()
    store(text_ + "\n" + log_line + w0_line + forged + w2_line)  # w1's line made with another key
    failures = cosignature_failures()
    assert [c for c, _ in failures] == ["checkpoint.cosignature"] and "another key" in failures[0][1]
    # Same name and key ID as w1 but signed by another key: invalid, and then below the quorum too.
    real_id = witness_net.witnesses[1].key.key_id
    spoof = type(sigs[0])(impostor.name, real_id, impostor.cosign(text_, 1_800_000_000).signature).line()
    store(text_ + "\n" + log_line + w0_line + spoof)
    assert sorted(c for c, _ in cosignature_failures()) == ["checkpoint.cosignature", "checkpoint.quorum"]
    assert os.environ.get("PROVENANCE_WITNESSES") is None  # the test never leaked its settings
