"""Proof-bundle benchmark: bundle size, build time and verify time for one real record in a log of 1M leaves.

    .venv/bin/python benchmarks/bench_bundles.py [--leaves 1000000] [--batch 20000] [--repeats 30]

A real ledger on the embedded default (SQLite in a temp dir, local block store, in-process EVM): a publisher that
holds its own key is registered (a key event, signed by the operator), filler leaves are appended with the SQL log's
``append_many`` (as benchmarks/bench_translog.py does), the publisher rotates its key (a second key event), more
filler, then one real record (the publisher's signed statement + the service attestation), filler up to
``--leaves``, a signed checkpoint and its anchor. Then: ``records proof --bundle``'s builder, the bundle's size (raw
and gzipped), ``verify_bundle`` (median of ``--repeats``), and ``provenance verify`` end to end in a fresh process
(Python start-up included). Figures depend on the machine; they are printed, not asserted.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from provenance import keyevents
from provenance.bundle import ProofBundle, VerifyPolicy, verify_bundle
from provenance.bundle.build import build_bundle
from provenance.cid import cid_for_bytes
from provenance.config import Settings
from provenance.ledger import Ledger
from provenance.logging import configure_logging
from provenance.metadata import PublisherMetadata
from provenance.records import PerceptualHash
from provenance.services import open_ledger
from provenance.statements import PublisherStatement, key_id_for, utc_now
from provenance.translog import encode_verifier_key

HASHES = (PerceptualHash("phash", "phash-v1", 64, "0f1e2d3c4b5a6978"),)


def fake_cid(i: int) -> str:
    return f"bafkrei{i:052d}"  # the length of a real CIDv1 (base32, sha2-256), distinct per i


def photo() -> bytes:
    rng = np.random.default_rng(7)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def fill(ledger: Ledger, upto: int, batch: int, counter: list[int]) -> float:
    t0 = time.perf_counter()
    with ledger.engine.connect() as conn:
        size = ledger.log.size(conn)
    while size < upto:
        k = min(batch, upto - size)
        with ledger.engine.begin() as conn:
            ledger.log.append_many(conn, [fake_cid(counter[0] + j) for j in range(k)])
        counter[0] += k
        size += k
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leaves", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    configure_logging("WARNING", "console")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.leaves:,} leaves")

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        ledger = open_ledger(Settings(data_dir=data_dir))
        try:
            key1, key2 = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
            counter = [0]
            ledger.add_publisher("newsroom", key1.public_key())
            spent = fill(ledger, args.leaves // 3, args.batch, counter)
            ledger.append_key_event(keyevents.rotation("newsroom", key_id_for(key1.public_key()),
                                                       key2.public_key(), "publisher", key1))
            spent += fill(ledger, 2 * args.leaves // 3, args.batch, counter)
            image = photo()
            st = PublisherStatement(hashlib.sha256(image).hexdigest(), cid_for_bytes(image), "image/png",
                                    PublisherMetadata(title="Harbour at dawn"), "newsroom",
                                    key_id_for(key2.public_key()), utc_now()).sign(key2)
            cid = ledger.ingest(image, publisher="newsroom", metadata=PublisherMetadata(), statement=st,
                                hashes=HASHES).cid
            spent += fill(ledger, args.leaves, args.batch, counter)
            print(f"  log built: {args.leaves:,} leaves, filler appended at {counter[0] / spent:,.0f} leaves/s")
            t0 = time.perf_counter()
            cp = ledger.anchor()
            print(f"  checkpoint at size {cp.tree_size:,} signed and anchored in {time.perf_counter() - t0:.2f} s")

            builds = []
            for _ in range(max(3, args.repeats // 5)):
                t0 = time.perf_counter()
                bundle = build_bundle(ledger, cid)
                builds.append(time.perf_counter() - t0)
            assert bundle is not None
            log_key = encode_verifier_key(ledger.config.log_key_name, ledger.log_public_key())
        finally:
            ledger.close()

        data = bundle.to_json()
        sizes = [len(bundle.record.proof.hashes)] + [len(e.proof.hashes) for e in bundle.key_events]
        print(f"  bundle: {len(data):,} bytes ({len(gzip.compress(data)):,} gzipped); record at leaf "
              f"{bundle.record.index:,} with {sizes[0]} proof hashes; {len(bundle.key_events)} key events with "
              f"{sizes[1:]} proof hashes; record {len(bundle.record.data):,} bytes; checkpoint note "
              f"{len(bundle.checkpoint)} bytes")
        print(f"  build (records proof --bundle, from SQLite): median {statistics.median(builds) * 1e3:.1f} ms")

        parse, verify = [], []
        policy = VerifyPolicy(log_key=log_key)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            parsed = ProofBundle.from_json(data)
            t1 = time.perf_counter()
            report = verify_bundle(parsed, image=image, policy=policy)
            t2 = time.perf_counter()
            parse.append(t1 - t0)
            verify.append(t2 - t1)
        print(f"  from_json: median {statistics.median(parse) * 1e3:.2f} ms; verify_bundle (with --image, "
              f"{len(report.checks)} checks): median {statistics.median(verify) * 1e3:.2f} ms, "
              f"min {min(verify) * 1e3:.2f} ms over {args.repeats}")

        path = Path(tmp) / "record.bundle.json"
        path.write_bytes(data)
        img_path = Path(tmp) / "image.png"
        img_path.write_bytes(image)
        cli = Path(sys.executable).with_name("provenance")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
        empty = Path(tmp) / "empty"
        empty.mkdir()
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            proc = subprocess.run([str(cli), "verify", str(path), "--image", str(img_path), "--log-key", log_key],
                                  cwd=empty, env=env, capture_output=True, text=True)
            runs.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                raise SystemExit(f"provenance verify failed: {proc.stderr}")
        print(f"  provenance verify (fresh process, no data directory): median {statistics.median(runs):.2f} s")


if __name__ == "__main__":
    main()
