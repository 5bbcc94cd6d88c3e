"""Every strict parser of signed artefacts, fed mutations of real ones: it must raise only its documented error type
(never KeyError, TypeError, AttributeError, RecursionError, ...), and what it accepts must be usable (verifying it
raises only the documented errors too)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from provenance.bundle import ProofBundle
from provenance.bundle.tlog_proof import parse_tlog_proof
from provenance.bundle.verify import VerifyPolicy, verify_bundle
from provenance.canonical import parse_canonical_json
from provenance.errors import (
    BundleError,
    CheckpointError,
    InvalidRecordError,
    KeyEventError,
    LogError,
    ReceiptError,
    SignatureError,
    StatementError,
    TilePathError,
)
from provenance.keyevents import KeyEvent, KeyHistory
from provenance.receipts import SignedReceipt, verify_receipt
from provenance.records import AttestedRecord, parse_record, record_view
from provenance.statements import SignedStatement
from provenance.translog.checkpoint import parse_checkpoint_note, parse_verifier_key, verify_checkpoint_note_with
from provenance.translog.cosignature import (
    check_cosignatures,
    parse_cosignature_lines,
    parse_witness_private_key,
    parse_witness_vkey,
    verify_cosignature,
)
from provenance.translog.tiles import TileId, decode_entry_bundle, parse_tile_path, split_tile, tile_path
from provenance.witness.errors import WitnessRefusal
from provenance.witness.protocol import parse_add_checkpoint, parse_size_body
from provenance.witness.state import TrustedLog, evaluate
from tests.fuzz.conftest import FuzzStats, budget, corpus_files
from tests.fuzz.mutations import mutated_json, mutated_text
from tests.fuzz.seeds import TrustWorld

DEEP_RECORD = b"[" * 100_000 + b"]" * 100_000  # found by this suite: RecursionError from the JSON parser


def _loads(data: bytes) -> Any:
    """The JSON a client's parser would hand over (callers bound the depth first, as the API does); None if none."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return obj


# --- records (v1 and v2) ---------------------------------------------------------------------------------------------
def test_fuzz_record_parsing(trust_world: TrustWorld, fuzz_stats: FuzzStats) -> None:
    seeds = {name: json.loads(data) for name, data in trust_world.records.items()}
    service_key = trust_world.ledger.log_public_key()

    def parse_and_use(data: bytes) -> None:
        rec = parse_record(data)
        record_view(rec)
        if isinstance(rec, AttestedRecord):
            try:
                rec.verify_attestation(service_key)
            except SignatureError:
                pass

    @budget(300)
    @given(data=mutated_json(seeds, canonical=True))
    @example(data=DEEP_RECORD)
    @example(data=b'{"c2pa":null,"hashes":[],"image":{},"ingested_at":"","metadata":[],"publisher":{},'
                  b'"schema":"provenance-record/v1","schema_version":1,"signature":{}}')
    def run(data: bytes) -> None:
        fuzz_stats.run("record", lambda: parse_and_use(data), (InvalidRecordError,), given=data)

    run()
    for path in corpus_files("record"):
        fuzz_stats.run("record", lambda: parse_and_use(path.read_bytes()), (InvalidRecordError,), given=path.name)


def test_fuzz_canonical_json(fuzz_stats: FuzzStats) -> None:
    """The one reader of stored records and key events (audit from tiles, bundles, the block store)."""

    @budget(100)
    @given(data=st.one_of(st.binary(max_size=200), st.builds(lambda n, k: (b"[" if k else b'{"a":') * n,
                                                             st.integers(1, 200_000), st.booleans())))
    @example(data=DEEP_RECORD)
    def run(data: bytes) -> None:
        fuzz_stats.run("canonical_json", lambda: parse_canonical_json(data), (InvalidRecordError,), given=data)

    run()


# --- publisher statements and key events ------------------------------------------------------------------------------
def test_fuzz_statement_parsing(trust_world: TrustWorld, fuzz_stats: FuzzStats) -> None:
    signed = trust_world.statement
    key = trust_world.ledger.key_history().keys["newsroom"][signed.statement.key_id].public_key

    def parse_and_verify(obj: Any) -> None:
        st_ = SignedStatement.from_obj(obj)
        st_.digest  # noqa: B018 - canonical bytes must be computable for anything accepted
        st_.verify(key)

    @budget(200)
    @given(data=mutated_json({"statement": signed.to_obj()}))
    def run(data: bytes) -> None:
        obj = _loads(data)
        fuzz_stats.run("statement", lambda: parse_and_verify(obj), (StatementError, SignatureError), given=data)

    run()


def test_fuzz_key_event_parsing(trust_world: TrustWorld, fuzz_stats: FuzzStats) -> None:
    seeds = {e.kind: e.to_obj() for e in trust_world.events}
    operator = trust_world.ledger.log_public_key()

    def parse_and_apply(obj: Any) -> None:
        event = KeyEvent.from_obj(obj)
        (event.kind, event.publisher, event.signer_role, event.signer_key_id, event.subject_key_id, event.new_key,
         event.record_cid, event.to_bytes())
        KeyHistory(operator).apply(event, 7, record_publisher="newsroom")

    @budget(300)
    @given(data=mutated_json(seeds))
    def run(data: bytes) -> None:
        obj = _loads(data)
        fuzz_stats.run("key_event", lambda: parse_and_apply(obj), (KeyEventError, SignatureError), given=data)

    run()
    for path in corpus_files("key_event"):
        obj = _loads(path.read_bytes())
        fuzz_stats.run("key_event", lambda: parse_and_apply(obj), (KeyEventError, SignatureError), given=path.name)


# --- lookup receipts ------------------------------------------------------------------------------------------------
def test_fuzz_receipt_parsing(trust_world: TrustWorld, fuzz_stats: FuzzStats) -> None:
    seeds = {"receipt": json.loads(trust_world.receipt)}

    @budget(200)
    @given(data=mutated_json(seeds))
    @example(data=b'{"a":' * 50_000 + b"1" + b"}" * 50_000)
    def run(data: bytes) -> None:
        fuzz_stats.run("receipt", lambda: (SignedReceipt.from_bytes(data),
                                           verify_receipt(data, trust_world.receipt_vkey)), (ReceiptError,), given=data)

    run()
    for path in corpus_files("receipt"):
        fuzz_stats.run("receipt", lambda: SignedReceipt.from_bytes(path.read_bytes()), (ReceiptError,),
                       given=path.name)


# --- proof bundles and their tlog-proofs -----------------------------------------------------------------------------
def test_fuzz_bundle_parsing_and_verification(trust_world: TrustWorld, fuzz_stats: FuzzStats) -> None:
    seeds = {name: b.to_obj() for name, b in trust_world.bundles.items()}
    policy = VerifyPolicy(log_key=trust_world.log_vkey)
    image = trust_world.images["custodial"]

    def parse_and_verify(data: bytes) -> None:
        bundle = ProofBundle.from_json(data)
        verify_bundle(bundle, policy=policy, image=image)

    @budget(250)
    @given(data=mutated_json(seeds))
    @example(data=b"[" * 200_000 + b"]" * 200_000)
    def run(data: bytes) -> None:
        fuzz_stats.run("bundle", lambda: parse_and_verify(data), (BundleError,), given=data)

    run()
    for path in corpus_files("bundle"):
        fuzz_stats.run("bundle", lambda: parse_and_verify(path.read_bytes()), (BundleError,), given=path.name)


def test_fuzz_tlog_proof_parsing(trust_world: TrustWorld, fuzz_stats: FuzzStats) -> None:
    seeds = {name: b.record.proof.encode() for name, b in trust_world.bundles.items()}

    @budget(200)
    @given(text=st.one_of(mutated_text(seeds), st.text(max_size=200)))
    def run(text: str) -> None:
        fuzz_stats.run("tlog_proof", lambda: parse_tlog_proof(text), (BundleError,), given=text)

    run()


# --- checkpoints, verifier keys, cosignatures, witness requests -------------------------------------------------------
def test_fuzz_checkpoint_note_parsing(trust_world: TrustWorld, fuzz_stats: FuzzStats) -> None:
    seeds = {"note": trust_world.note}

    def parse_and_verify(text: str) -> None:
        parse_checkpoint_note(text)
        verify_checkpoint_note_with(text, [trust_world.log_vkey])

    @budget(250)
    @given(text=mutated_text(seeds))
    def run(text: str) -> None:
        fuzz_stats.run("checkpoint_note", lambda: parse_and_verify(text), (CheckpointError,), given=text)

    run()


def test_fuzz_verifier_key_parsing(trust_world: TrustWorld, fuzz_stats: FuzzStats) -> None:
    seeds = {"log": trust_world.log_vkey, "witness": trust_world.witness_vkey,
             "private": "PRIVATE+KEY+" + trust_world.witness_vkey}

    def parse(text: str) -> None:
        for parser in (parse_verifier_key, parse_witness_vkey, parse_witness_private_key):
            try:
                parser(text)
            except CheckpointError:
                pass

    @budget(200)
    @given(text=st.one_of(mutated_text(seeds), st.text(max_size=80)))
    def run(text: str) -> None:
        fuzz_stats.run("verifier_key", lambda: parse(text), (CheckpointError,), given=text)

    run()


def test_fuzz_cosignature_parsing(trust_world: TrustWorld, fuzz_stats: FuzzStats) -> None:
    note = trust_world.note
    body = parse_checkpoint_note(note)[0].body()
    lines = note[note.rfind("\n\n") + 2:]

    def check(text: str) -> None:
        try:
            verify_cosignature(text, trust_world.witness_vkey)
        except CheckpointError:  # CosignatureError is one
            pass
        check_cosignatures(text, [trust_world.witness_vkey])

    @budget(200)
    @given(text=mutated_text({"note": note}), response=mutated_text({"lines": lines}))
    def run(text: str, response: str) -> None:
        fuzz_stats.run("cosignature", lambda: check(text), (CheckpointError,), given=text)
        fuzz_stats.run("cosignature", lambda: parse_cosignature_lines(body, response), (CheckpointError,),
                       given=response)

    run()


def test_fuzz_witness_request_parsing(trust_world: TrustWorld, fuzz_stats: FuzzStats) -> None:
    origin = parse_checkpoint_note(trust_world.note)[0].origin
    logs = {origin: TrustedLog(origin, (parse_verifier_key(trust_world.log_vkey),))}

    def handle(body: bytes) -> None:
        evaluate(logs, {}, parse_add_checkpoint(body))

    @budget(200)
    @given(text=mutated_text({"req": trust_world.add_checkpoint.decode()}), size=st.binary(max_size=24))
    def run(text: str, size: bytes) -> None:
        body = text.encode("utf-8", "surrogatepass")
        fuzz_stats.run("witness_request", lambda: handle(body), (WitnessRefusal,), given=body)
        fuzz_stats.run("witness_request", lambda: parse_size_body(size), (WitnessRefusal,), given=size)

    run()


# --- tiles -----------------------------------------------------------------------------------------------------
_TILE_SEEDS = {f"t{i}": tile_path(t) for i, t in enumerate(
    (TileId(0, 0), TileId(1, 1234067), TileId(None, 5, 17), TileId(63, 999, 255), TileId(2, 1000)))}


def test_fuzz_tile_paths_and_contents(fuzz_stats: FuzzStats) -> None:
    @budget(300)
    @given(path=st.one_of(mutated_text(_TILE_SEEDS), st.text(max_size=60),
                          st.from_regex(r"/?tile/(entries|[0-9x]{1,3})(/x?[0-9]{1,4}){1,7}(\.p/[0-9]{1,4})?",
                                        fullmatch=True)),
           data=st.binary(max_size=600), count=st.one_of(st.none(), st.integers(0, 300)))
    def run(path: str, data: bytes, count: int | None) -> None:
        tile = fuzz_stats.run("tile_path", lambda: parse_tile_path(path), (TilePathError,), given=path)
        if tile is not None:
            assert tile_path(tile) == path.removeprefix("/")  # one canonical spelling per tile
            fuzz_stats.run("tile_contents", lambda: split_tile(data, tile), (LogError,), given=data)
        fuzz_stats.run("tile_contents", lambda: decode_entry_bundle(data, count), (LogError,), given=data)

    run()


def test_deep_documents_are_refused_even_under_web3s_recursion_limit() -> None:
    """The condition that made crash 1 of docs/fuzzing.md a segfault, not an exception: web3's dependencies raise
    the recursion limit to 100,000, where ``json.loads`` of 100,000 nested arrays kills the process (exit 139). Each
    reader must refuse such a document with its own error first, in a process with that limit."""
    import subprocess
    import sys

    script = """
import sys
sys.setrecursionlimit(100_000)
from provenance.bundle import ProofBundle
from provenance.canonical import parse_canonical_json
from provenance.errors import BundleError, InvalidRecordError, ReceiptError
from provenance.receipts import SignedReceipt
from provenance.records import parse_record
deep = b"[" * 100_000 + b"]" * 100_000
for read, error in ((parse_record, InvalidRecordError), (parse_canonical_json, InvalidRecordError),
                    (ProofBundle.from_json, BundleError), (SignedReceipt.from_bytes, ReceiptError)):
    try:
        read(deep)
    except error as exc:
        assert "nested 100000 levels deep" in str(exc), exc
    else:
        raise AssertionError(read)
print("refused all")
"""
    from tests.fixtures.services import ROOT

    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "refused all" in done.stdout, (done.returncode, done.stderr[-2000:])
