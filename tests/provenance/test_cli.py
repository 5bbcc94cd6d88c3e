"""The ``provenance`` console script, run as a user runs it: a separate process per command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "provenance"


def run(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
    full_env.update(env or {})
    return subprocess.run([str(BIN), "--data-dir", str(data_dir), *args], capture_output=True, text=True,
                          env=full_env, timeout=600)


@pytest.fixture
def images(tmp_path: Path, shared_photos: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ["kodim01.png", "kodim02.png"]:
        shutil.copy(shared_photos / "kodak24" / name, folder / name)
    return folder


def test_publish_anchor_audit_across_processes(tmp_path: Path, images: Path) -> None:
    data = tmp_path / "data"
    assert "registered with key ed25519:" in run(data, "publishers", "add", "acme").stdout
    out = run(data, "ingest", str(images), "--publisher", "acme", "--meta", "title=Harbour", "--meta", "desk=city")
    assert out.returncode == 0, out.stderr
    assert "2 appended, 0 already present, 0 refused" in out.stdout
    again = run(data, "ingest", str(images / "kodim01.png"), "--publisher", "acme")
    assert "0 appended, 1 already present" in again.stdout
    anchored = run(data, "anchor", "--json")
    assert anchored.returncode == 0, anchored.stderr
    receipt = json.loads(anchored.stdout)
    # acme's key registration (leaf 0), then the two records
    assert receipt["tree_size"] == 3 and receipt["ephemeral"] is True and receipt["gas_used"] > 0
    audit = run(data, "audit", "--json")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    report = json.loads(audit.stdout)
    assert report["ok"] and report["records_verified"] == 2
    # a new process cannot see the in-process chain of the anchoring one, and says so instead of pretending
    assert [a["status"] for a in report["anchors"]] == ["ephemeral"]
    assert any("no durable timestamp" in w["message"] for w in report["warnings"])
    human = run(data, "audit")
    assert "NOT a durable timestamp" in human.stdout


def test_record_and_proof_commands(tmp_path: Path, images: Path) -> None:
    data = tmp_path / "data"
    run(data, "publishers", "add", "acme")
    ingested = json.loads(run(data, "ingest", str(images), "--publisher", "acme", "--json").stdout)
    cid = ingested["ingested"][1]["cid"]
    pending = run(data, "records", "proof", cid)
    assert pending.returncode == 3 and "not in a checkpoint yet" in pending.stderr
    run(data, "anchor")
    proof = json.loads(run(data, "records", "proof", cid).stdout)
    assert proof["leaf_index"] == 2 and proof["tree_size"] == 3 and len(proof["inclusion_proof"]) == 1
    record = json.loads(run(data, "records", "show", cid).stdout)
    assert record["statement"]["publisher"]["id"] == "acme" and record["custody"] == "service"


def test_bad_inputs_give_clear_errors_and_exit_codes(tmp_path: Path, images: Path) -> None:
    data = tmp_path / "data"
    run(data, "publishers", "add", "acme")
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = run(data, "ingest", str(images), "--publisher", "acme")
    assert out.returncode == 1
    assert "REFUSED" in out.stderr and "broken.jpg" in out.stderr
    assert "2 appended, 0 already present, 1 refused" in out.stdout
    nobody = run(data, "ingest", str(images / "kodim01.png"), "--publisher", "nobody")
    assert nobody.returncode == 3 and "'nobody' is not registered" in nobody.stderr
    bad_meta = run(data, "ingest", str(images / "kodim01.png"), "--publisher", "acme", "--meta", "novalue")
    assert bad_meta.returncode == 2 and "KEY=VALUE" in bad_meta.stderr
    dup = run(data, "publishers", "add", "acme")
    assert dup.returncode == 3 and "already registered" in dup.stderr
    bad_name = run(data, "publishers", "add", "Not A Name")
    assert bad_name.returncode == 3 and "invalid name" in bad_name.stderr


def test_audit_exits_non_zero_on_tampering(tmp_path: Path, images: Path) -> None:
    data = tmp_path / "data"
    run(data, "publishers", "add", "acme")
    run(data, "ingest", str(images), "--publisher", "acme")
    run(data, "anchor")
    blob = next(p for p in (data / "blocks").rglob("*") if p.is_file() and p.stat().st_size > 100_000)
    blob.write_bytes(blob.read_bytes()[:-10] + b"0123456789")
    out = run(data, "audit")
    assert out.returncode == 1
    assert "FAILED" in out.stdout and "FAILURE [blob.image]" in out.stdout


def test_data_dir_from_environment(tmp_path: Path) -> None:
    data = tmp_path / "from-env"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
    full_env["PROVENANCE_DATA_DIR"] = str(data)
    out = subprocess.run([str(BIN), "publishers", "add", "acme"], capture_output=True, text=True, env=full_env)
    assert out.returncode == 0, out.stderr
    assert (data / "keys" / "publishers" / "acme.ed25519.pem").exists()


def test_chain_down_is_named(tmp_path: Path, images: Path) -> None:
    from tests.fixtures.services import free_port

    data = tmp_path / "data"
    url = f"http://127.0.0.1:{free_port()}"
    run(data, "publishers", "add", "acme")
    run(data, "ingest", str(images), "--publisher", "acme")
    out = run(data, "anchor", env={"PROVENANCE_CHAIN_RPC_URL": url, "PROVENANCE_CHAIN_TIMEOUT_S": "2"})
    assert out.returncode == 3 and url in out.stderr and "unreachable" in out.stderr


@pytest.mark.evm_rpc
def test_real_chain_deploy_anchor_audit(tmp_path: Path, images: Path, evm_rpc_url: str) -> None:
    data = tmp_path / "data"
    env = {"PROVENANCE_CHAIN_RPC_URL": evm_rpc_url}
    deployed = run(data, "chain", "deploy", env=env)
    assert deployed.returncode == 0 and "deployed at 0x" in deployed.stdout
    again = run(data, "chain", "deploy", "--if-missing", env=env)
    assert "already at" in again.stdout
    run(data, "publishers", "add", "acme")
    run(data, "ingest", str(images), "--publisher", "acme")
    anchored = json.loads(run(data, "anchor", "--json", env=env).stdout)
    assert anchored["ephemeral"] is False and anchored["chain_id"] == 1337
    report = json.loads(run(data, "audit", "--json", env=env).stdout)
    assert report["ok"] and report["anchors"][0]["status"] == "verified"
    assert report["anchors"][0]["timestamp"].endswith("Z")


def test_demo_is_the_main_job(tmp_path: Path) -> None:
    """The README's main job on a fresh data dir, with the photos bundled in the scikit-image wheel."""
    out = run(tmp_path / "demo", "demo")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Ingested 8 photos from scikit-image's bundled photos (8 new)" in out.stdout
    assert "benign re-share" in out.stdout and "MATCH (expected match)" in out.stdout
    assert "ALTERED (expected altered)" in out.stdout and "NO_MATCH (expected no_match)" in out.stdout
    maps = list((tmp_path / "demo" / "change-maps").glob("*.png"))
    assert len(maps) == 1 and maps[0].read_bytes()[:4] == b"\x89PNG"
    assert "audit: OK" in out.stdout and "anchor for tree size 9: verified" in out.stdout
    assert "all verdicts as expected, audit passed" in out.stdout

def test_log_key_never_mints_a_key_in_the_wrong_directory(tmp_path: Path) -> None:
    """An auditor who runs `log key` outside the service's data directory must get an error, not a fresh key that
    signs nothing."""
    out = run(tmp_path / "not-the-data-dir", "log", "key")
    assert out.returncode == 3 and "no log key" in out.stderr
    assert not list((tmp_path / "not-the-data-dir").rglob("*.pem"))
