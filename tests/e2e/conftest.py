"""End-to-end fixtures: a real ``provenance serve`` on a free loopback port over a temp data dir (embedded
default: SQLite, local block store, in-process EVM and queue), with one registered publisher and its API key."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fixtures.services import ROOT, free_port, unavailable

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")


@dataclass
class Server:
    url: str
    data_dir: Path
    key: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def _register_publisher(data_dir: Path, name: str) -> str:
    from provenance.api.keys import create_api_key
    from provenance.config import Settings
    from provenance.services import open_ledger

    ledger = open_ledger(Settings(data_dir=data_dir))
    try:
        ledger.add_publisher(name)
        return create_api_key(ledger.engine, name)
    finally:
        ledger.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("e2e") / "data"
    key = _register_publisher(data_dir, "harbour-times")
    port = free_port()
    env = {**os.environ, "PROVENANCE_DATA_DIR": str(data_dir), "PROVENANCE_ANCHOR_EVERY_S": "1",
           "PROVENANCE_API_LOOKUP_BURST": "1000", "PROVENANCE_API_LOOKUP_RATE_PER_S": "100",
           "PROVENANCE_LOG_FORMAT": "json"}
    log_path = data_dir.parent / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "provenance.cli", "serve", "--host", "127.0.0.1",
                                 "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    srv = Server(f"http://127.0.0.1:{port}", data_dir, key, proc, log_path)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"provenance serve exited with {proc.returncode}:\n{srv.log()}")
            try:
                if httpx.get(srv.url + "/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"provenance serve did not answer within 90 s:\n{srv.log()}")
            time.sleep(0.3)
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        unavailable(f"Debian chromium not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()
