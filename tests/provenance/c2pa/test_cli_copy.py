"""``provenance records c2pa-copy``: a published image comes back C2PA-signed, with our hash and model id in a
c2pa.soft-binding assertion and the record's CID, readable (and Trusted under our root) by read_c2pa."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from provenance.bundle import verify_bundle
from provenance.bundle.build import build_bundle
from provenance.c2pa import PROOF_BUNDLE_ASSERTION_LABEL, read_c2pa
from provenance.c2pa.reader import manifest_store_json
from provenance.config import Settings
from provenance.records import parse_record
from provenance.services import open_ledger
from tests.fixtures.services import ROOT

BIN = ROOT / ".venv" / "bin" / "provenance"


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=600)


def test_signed_copy_carries_the_soft_binding_of_the_record(tmp_path: Path, pki, shared_photos: Path) -> None:
    (tmp_path / "pki").mkdir()
    files = pki.write(tmp_path / "pki")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
    env["OMP_NUM_THREADS"] = "1"
    data = str(tmp_path / "data")
    assert _run(env, "--data-dir", data, "publishers", "add", "acme").returncode == 0
    photo = shared_photos / "skimage" / "coffee.png"
    ingested = _run(env, "--data-dir", data, "ingest", "--inline", "--json", str(photo), "--publisher", "acme")
    assert ingested.returncode == 0, ingested.stderr
    cid = json.loads(ingested.stdout)["ingested"][0]["cid"]
    record = parse_record(_run(env, "--data-dir", data, "records", "show", cid).stdout.strip().encode()).record
    oscar = next(h.to_obj() for h in record.hashes if h.alg == "oscar-net")

    unconfigured = _run(env, "--data-dir", data, "records", "c2pa-copy", cid, str(tmp_path / "x.png"))
    assert unconfigured.returncode == 3 and "PROVENANCE_C2PA_SIGNING_CERT" in unconfigured.stderr

    env.update({"PROVENANCE_C2PA_SIGNING_CERT": str(files["chain"]), "PROVENANCE_C2PA_SIGNING_KEY": str(files["key"])})
    out = tmp_path / "signed.png"
    unanchored = _run(env, "--data-dir", data, "records", "c2pa-copy", cid, str(out))
    assert unanchored.returncode == 3 and "not in a checkpoint" in unanchored.stderr and not out.exists()
    assert _run(env, "--data-dir", data, "anchor").returncode == 0
    signed = _run(env, "--data-dir", data, "records", "c2pa-copy", cid, str(out), "--base-url", "https://p.example/")
    assert signed.returncode == 0, signed.stderr
    summary = read_c2pa(out.read_bytes(), trust_anchors=files["anchors"].read_text())
    assert summary.status == "present" and summary.validation_state == "Trusted"
    binding = summary.soft_bindings[0]
    assert (binding.alg, binding.value, binding.alg_params) == (oscar["alg"], oscar["value"], oscar["model_id"])
    assert summary.record_cid == cid
    # The copy carries its own proof: the digest and URL of the record's bundle at the checkpoint it was made at.
    store = manifest_store_json(out.read_bytes())
    assert store is not None
    manifest = store["manifests"][store["active_manifest"]]
    ref = next(a["data"] for a in manifest["assertions"] if a["label"] == PROOF_BUNDLE_ASSERTION_LABEL)
    ledger = open_ledger(Settings(data_dir=Path(data)))
    try:
        bundle = build_bundle(ledger, cid, tree_size=ref["tree_size"])
        image = ledger.blockstore.get(record.image_cid)
    finally:
        ledger.close()
    assert bundle is not None and ref["sha256"] == bundle.sha256 and ref["record_cid"] == cid
    assert ref["url"] == f"https://p.example/v1/records/{cid}/bundle?tree_size={ref['tree_size']}"
    assert verify_bundle(bundle, image=image).record_cid == cid

