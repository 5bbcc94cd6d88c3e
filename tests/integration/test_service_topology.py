"""The docker-compose topology as processes on loopback (no Docker on CI): the HTTP API (``provenance serve``) and a
Celery worker (``celery -A workers.app worker``) in their own processes, Redis as broker and result backend,
PostgreSQL for records, log and index catalog, a js-ipfs daemon as block store, ganache as the chain.

A publisher registers (CLI, which prints its API key once), the contract is deployed, an image goes in through
``POST /v1/assets`` and is ingested by the worker, the log is anchored on ganache, and a journalist's lookup of a
re-shared copy through ``POST /v1/lookup`` returns *match* with the record and a proof anchored on chain 1337.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from provenance.demo import benign_reshare
from tests.fixtures.services import ROOT, free_port
from tests.workers.conftest import claim_redis_db, new_stack, release, worker_env  # noqa: F401 (fixture import)

BIN = ROOT / ".venv" / "bin" / "provenance"


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, f"provenance {' '.join(args)}: {out.stdout}\n{out.stderr}"
    return out


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"API exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"API not up after {timeout_s} s:\n{log.read_text()[-3000:]}")


@pytest.mark.timeout(900)
def test_api_and_worker_processes_on_real_services(claim_redis_db, tmp_path_factory, ipfs_api_url,  # noqa: F811
                                                   evm_rpc_url, pg_schema_url, shared_photos) -> None:
    stack = new_stack(claim_redis_db, tmp_path_factory, PROVENANCE_DATABASE_URL=pg_schema_url,
                      PROVENANCE_BLOCKSTORE="ipfs", PROVENANCE_IPFS_API_URL=ipfs_api_url,
                      PROVENANCE_CHAIN_RPC_URL=evm_rpc_url)
    env = worker_env(stack.env)
    api: subprocess.Popen[bytes] | None = None
    try:
        _cli(env, "chain", "deploy", "--if-missing")
        lines = _cli(env, "publishers", "add", "acme").stdout.splitlines()
        key = lines[next(i for i, ln in enumerate(lines) if ln.startswith("API key for acme")) + 1].strip()
        stack.worker().start(timeout_s=120)

        port = free_port()
        log = stack.tmp / "api.log"
        with log.open("wb") as fh:
            api = subprocess.Popen([str(BIN), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                   stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        _wait_http(f"{base}/openapi.json", api, log)

        original = (shared_photos / "kodak24" / "kodim03.png").read_bytes()
        refused = httpx.post(f"{base}/v1/assets", files={"file": ("a.png", original, "image/png")},
                             headers={"Authorization": "Bearer wrong"}, timeout=30)
        assert refused.status_code == 401 and refused.json()["error"]["message"]
        accepted = httpx.post(f"{base}/v1/assets", files={"file": ("kodim03.png", original, "image/png")},
                              data={"metadata": json.dumps({"title": "Hats"})},
                              headers={"Authorization": f"Bearer {key}"}, timeout=60)
        assert accepted.status_code == 202, accepted.text
        task_url = f"{base}/v1/tasks/{accepted.json()['task_id']}"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            status = httpx.get(task_url, timeout=10).json()
            if status["state"] in ("succeeded", "failed"):
                break
            time.sleep(0.5)
        assert status["state"] == "succeeded", status
        cid = status["record_cid"]

        _cli(env, "anchor")
        found = httpx.post(f"{base}/v1/lookup", files={"file": ("copy.jpg", benign_reshare(original), "image/jpeg")},
                           timeout=120)
        assert found.status_code == 200, found.text
        verdict = found.json()
        assert verdict["verdict"] == "match" and verdict["record_cid"] == cid
        assert verdict["record"]["metadata"]["title"] == "Hats"
        proof = httpx.get(f"{base}/v1/records/{cid}/proof", timeout=30).json()
        anchor = proof["checkpoint"]["anchor"]
        assert anchor["chain_id"] == 1337 and not anchor["ephemeral"] and len(proof["inclusion_proof"]) == 1  # + the key registration
    finally:
        if api is not None and api.poll() is None:
            api.terminate()
            api.wait(timeout=20)
        stack.close()
        release(stack.redis)
