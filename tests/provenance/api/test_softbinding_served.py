"""414 for over-long ``GET /matches/byBinding`` queries, against a real ``provenance serve`` process on loopback.

Before: 400 at 6-100 KB (the value's check, then h11's 16 KiB head limit) and, at 200 KB-1 MB, a connection reset
with no answer at all (the server closed while the request line was still arriving). The C2PA Soft Binding
Resolution API specifies 414 ("Query too long, consider using POST instead"): the route answers it for query
strings over 2 KiB, and the server's protocol (``provenance/api/request_line.py``) for request lines it will not
parse, reading what the client still sends so that the answer arrives."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.services import ROOT, free_port

PHASH = "org.provenance-service.phash.1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("served-414") / "data"
    port = free_port()
    env = {**os.environ, "PROVENANCE_DATA_DIR": str(data_dir), "PROVENANCE_ANCHOR_EVERY_S": "3600"}
    log_path = data_dir.parent / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "provenance.cli", "serve", "--host", "127.0.0.1", "--port",
                                 str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]
            try:
                if httpx.get(url + "/services/supportedAlgorithms", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")[-3000:]
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _raw_get(server: str, target: str) -> tuple[int, bytes]:
    """One whole HTTP/1.1 request sent before anything is read (clients do that), then the whole answer: status and
    body. (httpx refuses URLs over 64 KiB, so the request is written by hand.)"""
    port = int(server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize("size", [3_000, 6_000, 20_000, 100_000, 200_000, 1_000_000])
def test_long_by_binding_queries_get_414(server: str, size: int) -> None:
    status, body = _raw_get(server, f"/matches/byBinding?alg={PHASH}&value={'A' * size}")
    assert status == 414, body[:300]
    error = json.loads(body)["error"]
    assert error["code"] == "uri_too_long" and "POST /matches/byBinding" in error["message"]


def test_the_414_arrives_before_the_line_ends_and_the_server_lives_on(server: str) -> None:
    """A client that sends 2 MB of request line and then reads gets the answer, not a reset."""
    port = int(server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /matches/byBinding?alg=x&value=" + b"A" * 2_000_000)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 414 "), answer[:200]
    assert b'"uri_too_long"' in answer
    ok = httpx.get(server + "/matches/byBinding", params={"alg": PHASH, "value": "AAAAAAAAAAA="}, timeout=30)
    assert ok.status_code == 200 and ok.json() == {"matches": []}
    short = httpx.get(server + "/matches/byBinding", params={"alg": PHASH}, timeout=30)
    assert short.status_code == 400  # a missing value: 400, as the specification says
