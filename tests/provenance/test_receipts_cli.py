"""``provenance lookup --receipt``, ``provenance log key`` and ``provenance verify-receipt`` as a user runs them.

``verify-receipt`` needs no data directory: it runs in an empty working directory and must leave it empty. Its bad
vectors (each exit 1, naming what failed) run through the same click command in-process, to keep the suite fast.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from provenance.cli import cli
from provenance.receipts import (
    LookupReceipt,
    QueryCode,
    ReceiptCandidate,
    ReceiptCheckpoint,
    SignedReceipt,
    service_key_ref,
    sign_receipt,
)
from provenance.translog import encode_verifier_key

BIN = Path(sys.executable).parent / "provenance"
KEY = Ed25519PrivateKey.generate()
VKEY = encode_verifier_key("provenance-log", KEY.public_key())
CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def run(*args: str, cwd: Path, data_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
    pre = ["--data-dir", str(data_dir)] if data_dir is not None else []
    return subprocess.run([str(BIN), *pre, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def receipt_bytes(**changes: object) -> bytes:
    fields: dict[str, object] = dict(
        receipt_id="ab" * 16, issued_at="2026-03-04T05:06:07.000000Z", service=service_key_ref("provenance-log", KEY),
        query_sha256=hashlib.sha256(b"q").hexdigest(), codes=(QueryCode("phash", "phash-v1", 64, "00ff" * 4),),
        verdict="match", record_cid=CID, candidates=(ReceiptCandidate(CID, {"phash": 3}),),
        checkpoint=ReceiptCheckpoint("provenance.example/log", 7, hashlib.sha256(b"root").digest()))
    fields.update(changes)
    return sign_receipt(LookupReceipt(**fields), KEY).to_bytes()  # type: ignore[arg-type]


def test_verify_receipt_needs_no_data_directory(tmp_path: Path) -> None:
    good = tmp_path / "receipt.json"
    good.write_bytes(receipt_bytes())
    work = tmp_path / "empty"
    work.mkdir()
    ok = run("verify-receipt", str(good), "--service-key", VKEY, cwd=work)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK: receipt" in ok.stdout and f"match: record {CID}" in ok.stdout
    bad = tmp_path / "tampered.json"
    bad.write_bytes(good.read_bytes().replace(b'"verdict":"match"', b'"verdict":"natch"'))
    failed = run("verify-receipt", str(bad), "--service-key", VKEY, "--json", cwd=work)
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["check"] == "signature" and not json.loads(failed.stdout)["ok"]
    assert list(work.iterdir()) == []  # no data directory was created


def _flip_root(data: bytes) -> bytes:
    obj = json.loads(data)
    root = bytearray(base64.b64decode(obj["checkpoint"]["root"]))
    root[31] ^= 1
    obj["checkpoint"]["root"] = base64.b64encode(bytes(root)).decode()
    return json.dumps(obj).encode()


def _flip_signature(data: bytes) -> bytes:
    obj = json.loads(data)
    sig = bytearray(base64.b64decode(obj["signature"]))
    sig[0] ^= 1
    obj["signature"] = base64.b64encode(bytes(sig)).decode()
    return json.dumps(obj).encode()


def _drop(field: str):  # type: ignore[no-untyped-def]
    def change(data: bytes) -> bytes:
        obj = json.loads(data)
        del obj[field]
        return json.dumps(obj).encode()
    return change


BAD_VECTORS = {
    "verdict-byte-changed": (lambda d: d.replace(b'"verdict":"match"', b'"verdict":"latch"'), VKEY, "signature"),
    "signature-byte-changed": (_flip_signature, VKEY, "signature"),
    "checkpoint-root-byte-changed": (_flip_root, VKEY, "signature"),
    "other-service-key": (lambda d: d, encode_verifier_key("provenance-log", Ed25519PrivateKey.generate()
                                                           .public_key()), "key_mismatch"),
    "not-a-verifier-key": (lambda d: d, "provenance-log", "service_key"),
    "malformed-json": (lambda d: d[:-1], VKEY, "json"),
    "missing-checkpoint": (_drop("checkpoint"), VKEY, "field:receipt"),
    "missing-signature": (_drop("signature"), VKEY, "field:receipt"),
}


@pytest.mark.parametrize("name", sorted(BAD_VECTORS))
def test_verify_receipt_bad_vectors_exit_1_naming_the_failure(tmp_path: Path, name: str) -> None:
    change, vkey, check = BAD_VECTORS[name]
    path = tmp_path / f"{name}.json"
    path.write_bytes(change(receipt_bytes()))
    result = CliRunner().invoke(cli, ["verify-receipt", str(path), "--service-key", vkey])
    assert result.exit_code == 1, result.output
    assert f"FAILED ({check}):" in result.output
    as_json = CliRunner().invoke(cli, ["verify-receipt", str(path), "--service-key", vkey, "--json"])
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["check"] == check


def test_verify_receipt_of_a_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["verify-receipt", str(tmp_path / "nope.json"), "--service-key", VKEY])
    assert result.exit_code == 1 and "FAILED (file): cannot read" in result.output


def test_no_match_receipt_reads_as_of_its_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(receipt_bytes(verdict="no_match", record_cid=None, candidates=()))
    result = CliRunner().invoke(cli, ["verify-receipt", str(path), "--service-key", VKEY])
    assert result.exit_code == 0 and "not registered as of checkpoint 7" in result.output


@pytest.mark.slow
def test_lookup_writes_a_receipt_that_verifies_under_the_log_key(tmp_path: Path, shared_photos: Path) -> None:
    """Register one photo (phash only, so this test loads no model in-process), then look up another one in a
    separate process: no_match, "as of" the checkpoint that covers the registered photo."""
    from provenance.config import Settings
    from provenance.hashing import PHashHasher
    from provenance.index import HashIndex
    from provenance.lookup.service import Lookup
    from provenance.records import PublisherMetadata
    from provenance.services import open_ledger

    data_dir = tmp_path / "data"
    registered = (shared_photos / "kodak24" / "kodim01.png").read_bytes()
    ledger = open_ledger(Settings(data_dir=data_dir))
    try:
        ledger.add_publisher("acme")
        hashes = (PHashHasher().hash_image(registered),)
        res = ledger.ingest(registered, publisher="acme", metadata=PublisherMetadata(title="Door"), hashes=hashes)
        index = HashIndex(data_dir, ledger.engine)
        Lookup(ledger, index).register(res.cid, "acme", hashes, b"not features")
        index.close()
        checkpoint = ledger.checkpoint()
    finally:
        ledger.close()
    query = tmp_path / "unrelated.jpg"
    Image.open(io.BytesIO((shared_photos / "kodak24" / "kodim20.png").read_bytes())).convert("RGB").save(query)

    out = run("lookup", str(query), "--json", "--receipt", str(tmp_path / "receipt.json"), cwd=tmp_path,
              data_dir=data_dir)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["verdict"] == "no_match"
    saved = (tmp_path / "receipt.json").read_bytes()
    assert SignedReceipt.from_obj(answer["receipt"]).to_bytes() == saved
    receipt = answer["receipt"]
    assert receipt["checkpoint"]["size"] == checkpoint.tree_size
    assert receipt["query"]["sha256"] == hashlib.sha256(query.read_bytes()).hexdigest()
    assert {c["alg"] for c in receipt["query"]["codes"]} == set(answer["hashes"]) >= {"oscar-net", "phash"}
    assert [c["record_cid"] for c in receipt["candidates"]] == [res.cid]

    key = run("log", "key", cwd=tmp_path, data_dir=data_dir)
    proof = run("records", "proof", res.cid, cwd=tmp_path, data_dir=data_dir)
    assert key.returncode == 0 and proof.returncode == 0, key.stderr + proof.stderr
    assert key.stdout.strip() == json.loads(proof.stdout)["checkpoint"]["verifier_key"]
    verified = run("verify-receipt", str(tmp_path / "receipt.json"), "--service-key", key.stdout.strip(), cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"not registered as of checkpoint {checkpoint.tree_size}" in verified.stdout
