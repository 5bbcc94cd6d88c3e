"""Builders for tests of the tiled log and the public audit: a real ledger (``open_ledger`` on a temp data dir:
SQLite, local block store, the log's own service key) grown to given sizes with a signed checkpoint at each, and a
ledger of real signed records (pHash only, so no model is loaded)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from provenance.cid import raw_cid
from provenance.config import Settings
from provenance.hashing import PHashHasher
from provenance.ledger import Ledger
from provenance.services import open_ledger
from provenance.translog import encode_verifier_key
from tests.fixtures.services import ROOT, free_port

BIN = ROOT / ".venv" / "bin" / "provenance"


@dataclass
class BuiltLog:
    settings: Settings
    ledger: Ledger
    cids: list[str] = field(default_factory=list)
    notes: dict[int, str] = field(default_factory=dict)  # tree size -> signed checkpoint note

    @property
    def vkey(self) -> str:
        return encode_verifier_key(self.ledger.config.log_key_name, self.ledger.log_public_key())

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir


_CIDS: list[str] = []  # made once per test process (Python's base32 is slow)


def leaf_cids(n: int) -> list[str]:
    """The first ``n`` synthetic record CIDs (valid raw CIDv1s)."""
    _CIDS.extend(raw_cid(f"log entry {i}".encode()) for i in range(len(_CIDS), n))
    return _CIDS[:n]


def build_log(data_dir: Path, sizes: Sequence[int]) -> BuiltLog:
    """A log of synthetic record CIDs appended with ``append_many``, checkpointed at each of ``sizes``."""
    settings = Settings(data_dir=data_dir)
    built = BuiltLog(settings, open_ledger(settings))
    for size in sizes:
        new = leaf_cids(size)[len(built.cids):]
        for start in range(0, len(new), 10_000):
            with built.ledger.engine.begin() as conn:
                built.ledger.log.append_many(conn, new[start : start + 10_000])
        built.cids.extend(new)
        built.notes[size] = built.ledger.checkpoint().note
    return built


def records_ledger(data_dir: Path, n: int) -> tuple[BuiltLog, list[str]]:
    """A ledger with publisher ``acme`` (custodial key) and ``n`` real signed records of small images, checkpointed;
    returns it and the record CIDs."""
    from provenance.metadata import PublisherMetadata
    from tests.provenance.api.fakes import textured_image

    settings = Settings(data_dir=data_dir)
    built = BuiltLog(settings, open_ledger(settings))
    built.ledger.hashers = (PHashHasher(),)
    built.ledger.add_publisher("acme")
    records = [built.ledger.ingest(textured_image(i), publisher="acme",
                                   metadata=PublisherMetadata(title=f"photo {i}")).cid for i in range(n)]
    cp = built.ledger.checkpoint()
    built.notes[cp.tree_size] = cp.note
    with built.ledger.reader.connect() as conn:
        built.cids = built.ledger.log.record_cid_run(conn, 0, cp.tree_size)
    return built, records


@contextmanager
def serve(data_dir: Path, log_path: Path) -> Iterator[str]:
    """``provenance serve`` as its own process on a free loopback port; yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([str(BIN), "--data-dir", str(data_dir), "serve", "--host", "127.0.0.1",
                                 "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"provenance serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                httpx.get(f"{url}/checkpoint", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"provenance serve not up:\n{log_path.read_text()[-3000:]}") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real ``provenance`` CLI as a process."""
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
