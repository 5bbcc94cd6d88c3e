"""The newsroom flow against a real ``provenance serve`` process (issue 14): ``client keygen``, registration by
public key only, ``client submit`` (statements signed here, verified there), key events over HTTP, and every way an
upload's statement can be wrong refused with a clear 4xx and nothing written. Also: the client imports nothing heavy."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from provenance.client.keys import load_private_key
from provenance.client.statement import build_statement
from provenance.metadata import PublisherMetadata
from provenance.records import AttestedRecord, parse_record
from provenance.statements import key_id_for
from tests.fixtures.services import free_port

ROOT = Path(__file__).resolve().parents[3]
PY = sys.executable


def _cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "provenance.cli", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd or ROOT, env=env)


def _env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
    env.update(PROVENANCE_DATA_DIR=str(data), PROVENANCE_ANCHOR_EVERY_S="100000", PYTHONPATH=str(ROOT))
    return env


def _jpeg(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    img = Image.effect_noise(size, 20 + seed).convert("RGB").resize(size)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@dataclass
class Server:
    url: str
    api_key: str
    key_path: Path
    data: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("newsroom")
    data = tmp / "data"
    key_path = tmp / "herald.key"
    out = _cli("client", "keygen", str(key_path), env=_env(data))
    assert out.returncode == 0, out.stderr
    key_id = out.stdout.strip().splitlines()[-1]
    assert key_id == key_id_for(load_private_key(key_path).public_key())
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert b"PUBLIC KEY" in (tmp / "herald.key.pub").read_bytes()
    # the private key is refused outright if given by mistake
    bad = _cli("publishers", "add", "herald", "--public-key", str(key_path), env=_env(data))
    assert bad.returncode != 0 and "PRIVATE key" in bad.stderr
    reg = _cli("publishers", "add", "herald", "--public-key", str(tmp / "herald.key.pub"), env=_env(data))
    assert reg.returncode == 0, reg.stderr
    assert "publisher custody" in reg.stdout and key_id in reg.stdout
    api_key = next(line.strip() for line in reg.stdout.splitlines() if line.startswith("  "))
    assert not (data / "keys" / "publishers" / "herald.ed25519.pem").exists()
    port = free_port()
    proc = subprocess.Popen([PY, "-m", "provenance.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=_env(data), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "server died"
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.5)
        yield Server(url, api_key, key_path, data)
    finally:
        proc.terminate()
        proc.wait(30)


def test_client_import_path_is_light() -> None:
    code = ("import sys, provenance.client, provenance.client.cli, provenance.client.submit\n"
            "heavy = [m for m in ('torch', 'cv2', 'faiss', 'hasher', 'sqlalchemy', 'web3') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr


def test_submit_signs_uploads_and_records_carry_both_signatures(server: Server, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(_jpeg(1))
    (photos / "b.jpg").write_bytes(_jpeg(2))
    out = subprocess.run([PY, "-m", "provenance.client", "submit", str(photos), "--server", server.url,
                          "--api-key", server.api_key, "--key", str(server.key_path), "--meta", "title=Quay",
                          "--meta", "licence=CC-BY-4.0", "--json"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path, env=_env(tmp_path / "none"))
    assert out.returncode == 0, out.stderr + out.stdout
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [Path(x["path"]).name for x in lines] == ["a.jpg", "b.jpg"] and all(x["record_cid"] for x in lines)
    pub = load_private_key(server.key_path).public_key()
    for line in lines:
        raw = httpx.get(f"{server.url}/v1/records/{line['record_cid']}").content
        rec = parse_record(raw)
        assert isinstance(rec, AttestedRecord) and rec.custody == "publisher"
        rec.verify(pub)  # the publisher's own signature, made on this side
        assert rec.record.metadata == PublisherMetadata(title="Quay", licence="CC-BY-4.0")
        assert {h.alg for h in rec.record.hashes} >= {"oscar-net", "phash"}  # computed by the service
    me = httpx.get(f"{server.url}/v1/publisher", headers={"Authorization": f"Bearer {server.api_key}"}).json()
    assert me["publisher"] == "herald" and me["custody"] == "publisher"


def test_submit_reports_a_bad_file_and_exits_1(server: Server, tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_bytes(b"not an image at all")
    out = subprocess.run([PY, "-m", "provenance.client", "submit", str(tmp_path / "notes.png"), "--server",
                          server.url, "--api-key", server.api_key, "--key", str(server.key_path), "--json"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 1
    [line] = [json.loads(x) for x in out.stdout.splitlines()]
    assert "not a JPEG, PNG" in line["error"]


def _post(server: Server, data: bytes, statement: bytes | None, **extra: str) -> httpx.Response:
    form = {"statement": statement.decode()} if statement is not None else {}
    form.update(extra)
    return httpx.post(f"{server.url}/v1/assets", files={"file": ("x.jpg", data, "image/jpeg")}, data=form,
                      headers={"Authorization": f"Bearer {server.api_key}"}, timeout=60)


def _log_size(server: Server) -> int:
    from provenance.config import Settings
    from provenance.services import open_ledger

    ledger = open_ledger(Settings(data_dir=server.data))
    try:
        with ledger.reader.connect() as conn:
            return ledger.log.size(conn)
    finally:
        ledger.close()


def test_bad_statements_get_clear_4xx_and_write_nothing(server: Server) -> None:
    key = load_private_key(server.key_path)
    meta = PublisherMetadata(title="t")
    before = _log_size(server)
    data, other = _jpeg(10), _jpeg(11)
    cases = {
        "no statement": (_post(server, data, None), 422, "statement_required"),
        "statement for another image": (
            _post(server, data, build_statement(other, publisher="herald", key=key, metadata=meta).to_bytes()),
            422, "invalid_statement"),
        "statement by another key": (
            _post(server, data, build_statement(data, publisher="herald", key=load_private_key_fresh(),
                                                metadata=meta).to_bytes()), 422, "invalid_key_event"),
        "malformed statement": (_post(server, data, b'{"type": "provenance-statement/v1"}'), 422,
                                "invalid_statement"),
        "metadata differs from the statement": (
            _post(server, data, build_statement(data, publisher="herald", key=key, metadata=meta).to_bytes(),
                  metadata='{"title": "changed"}'), 422, "invalid_statement"),
    }
    for name, (resp, status, code) in cases.items():
        assert (resp.status_code, resp.json()["error"]["code"]) == (status, code), (name, resp.text)
    assert _log_size(server) == before


def test_replayed_statement_is_refused(server: Server) -> None:
    key = load_private_key(server.key_path)
    data = _jpeg(20)
    st = build_statement(data, publisher="herald", key=key, metadata=PublisherMetadata(title="r")).to_bytes()
    first = _post(server, data, st)
    assert first.status_code == 202
    deadline = time.monotonic() + 120
    while httpx.get(f"{server.url}{first.json()['status_url']}").json()["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    again = _post(server, data, st)
    assert again.status_code == 409 and again.json()["error"]["code"] == "replayed"


def test_key_events_over_http(server: Server, tmp_path: Path) -> None:
    from provenance import keyevents

    key = load_private_key(server.key_path)
    data = _jpeg(30)
    st = build_statement(data, publisher="herald", key=key, metadata=PublisherMetadata(title="w")).to_bytes()
    task = _post(server, data, st).json()
    deadline = time.monotonic() + 120
    while (status := httpx.get(f"{server.url}{task['status_url']}").json())["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    cid = status["record_cid"]
    auth = {"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"}
    stranger = load_private_key_fresh()
    forged = keyevents.make_event("record-withdrawal", "herald", stranger, role="publisher", record_cid=cid,
                                  reason="")
    resp = httpx.post(f"{server.url}/v1/key-events", content=forged.to_bytes(), headers=auth)
    assert resp.status_code == 422 and "not a key of publisher 'herald'" in resp.json()["error"]["message"]
    out = subprocess.run([PY, "-m", "provenance.client", "withdraw", cid, "--server", server.url, "--api-key",
                          server.api_key, "--key", str(server.key_path), "--reason", "wrong caption"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["kind"] == "record-withdrawal"
    resp = httpx.post(f"{server.url}/v1/key-events", content=keyevents.withdrawal("herald", cid, key).to_bytes(),
                      headers=auth)
    assert resp.status_code == 422 and "already withdrawn" in resp.json()["error"]["message"]


def load_private_key_fresh():  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()
