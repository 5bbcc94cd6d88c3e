"""Lookup receipts: sign and verify time, and size (docs/receipts.md).

    .venv/bin/python benchmarks/bench_receipts.py [--n 2000] [--candidates 20] [--store 500]

For three receipt shapes (no candidate; a typical lookup: the three channels' codes and ``--candidates`` candidates
with their per-channel distances; the most the index returns: 4 searches x k = 10 = 40 candidates):

* sign: ``sign_receipt`` (RFC 8785 canonical bytes + Ed25519), median of ``--n``;
* verify: ``verify_receipt`` from the stored bytes (JSON parse, strict model, canonical bytes, Ed25519), median of
  ``--n``;
* size: the stored canonical JSON, and its base64url (what a response header would have carried);

then ``ReceiptIssuer.issue`` on a SQLite ledger (sign + insert into ``lookup_receipts``), median of ``--store``.
Figures depend on the machine; they are printed, not asserted.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from provenance.cid import cid_for_bytes  # noqa: E402
from provenance.receipts import (  # noqa: E402
    LookupReceipt,
    QueryCode,
    ReceiptCandidate,
    ReceiptCheckpoint,
    service_key_ref,
    sign_receipt,
    verify_receipt,
)
from provenance.translog import encode_verifier_key  # noqa: E402

KEY_NAME = "provenance-log"


def median_us(fn: Callable[[], object], n: int) -> float:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


def make_receipt(key: Ed25519PrivateKey, n_candidates: int) -> LookupReceipt:
    codes = (QueryCode("global-id", "global-id-v1-1b294740", 256, hashlib.sha256(b"g").hexdigest()),
             QueryCode("oscar-net", "oscar-v1-e1b6df66", 64, hashlib.sha256(b"o").hexdigest()[:16]),
             QueryCode("phash", "phash-v1", 64, hashlib.sha256(b"p").hexdigest()[:16]))
    cids = [cid_for_bytes(f"record {i}".encode()) for i in range(n_candidates)]
    candidates = tuple(ReceiptCandidate(cid, {"global-id": 30 + i, "oscar-net": 5 + i % 20, "phash": 2 + i % 30})
                       for i, cid in enumerate(sorted(cids)))
    return LookupReceipt(
        receipt_id="0123456789abcdef" * 2, issued_at="2026-01-02T03:04:05.123456Z",
        service=service_key_ref(KEY_NAME, key), query_sha256=hashlib.sha256(b"query").hexdigest(), codes=codes,
        verdict="match" if candidates else "no_match", record_cid=candidates[0].record_cid if candidates else None,
        candidates=candidates, checkpoint=ReceiptCheckpoint("provenance.example/log", 1_000_000,
                                                            hashlib.sha256(b"root").digest()))


def bench_issue(n: int) -> float:
    """Median microseconds of ReceiptIssuer.issue on a SQLite ledger (sign + one INSERT transaction)."""
    from provenance.blockstore import LocalBlockStore
    from provenance.db import create_schema, make_engine
    from provenance.hashing import PHashHasher
    from provenance.keyring import Keyring
    from provenance.ledger import Ledger, LedgerConfig
    from provenance.lookup_receipts import ReceiptIssuer

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        engine = make_engine(f"sqlite:///{root / 'ledger.sqlite3'}")
        create_schema(engine)
        ledger = Ledger(engine=engine, blockstore=LocalBlockStore(root / "blocks"), keyring=Keyring(root / "keys"),
                        hashers=(PHashHasher(),),
                        config=LedgerConfig("provenance.example/log", KEY_NAME, 1 << 20, 1 << 24),
                        anchor_factory=lambda _l: None)  # type: ignore[arg-type,return-value]
        issuer = ReceiptIssuer(ledger, None)
        checkpoint = issuer.searchable_checkpoint()
        answer = {"verdict": "no_match", "record_cid": None, "hash": "00" * 8, "model": "phash-v1",
                  "hashes": {"phash": "00" * 8}, "candidates": []}
        t = median_us(lambda: issuer.issue(b"query image bytes", answer, checkpoint), n)
        engine.dispose()
        return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="signatures and verifications timed per shape")
    ap.add_argument("--candidates", type=int, default=20, help="candidates in the typical receipt")
    ap.add_argument("--store", type=int, default=500, help="receipts issued into SQLite (0: skip)")
    args = ap.parse_args()

    key = Ed25519PrivateKey.generate()
    vkey = encode_verifier_key(KEY_NAME, key.public_key())
    print(f"{'receipt':<34} {'bytes':>7} {'base64url':>10} {'sign µs':>9} {'verify µs':>10}")
    for label, n_candidates in (("no candidate", 0), (f"typical ({args.candidates} candidates)", args.candidates),
                                ("most (40 candidates)", 40)):
        receipt = make_receipt(key, n_candidates)
        data = sign_receipt(receipt, key).to_bytes()
        assert verify_receipt(data, vkey) == receipt
        sign = median_us(lambda r=receipt: sign_receipt(r, key), args.n)
        verify = median_us(lambda d=data: verify_receipt(d, vkey), args.n)
        b64 = len(base64.urlsafe_b64encode(data).rstrip(b"="))
        print(f"{label:<34} {len(data):>7} {b64:>10} {sign:>9.1f} {verify:>10.1f}")
    if args.store:
        print(f"issue with storage (SQLite, median of {args.store}): {bench_issue(args.store):.1f} µs")


if __name__ == "__main__":
    main()
