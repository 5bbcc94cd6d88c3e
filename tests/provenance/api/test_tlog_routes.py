"""GET /checkpoint and GET /tile/... (C2SP tlog-tiles) over a real ledger, read by the independent reader in
tests/provenance/translog/c2sp_tile_reader.py: it rebuilds the root of every signed checkpoint from the served tiles
(partial tiles included, levels 0-2), checks entry bundles against the level-0 tiles, and verifies inclusion and
consistency proofs computed from the tiles against the checkpoints' signed roots. Also: headers, 400s and 404s, and
``provenance log export-tiles`` against a real ``provenance serve`` process, byte for byte."""

from __future__ import annotations

import gzip
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi.testclient import TestClient

from provenance.api.app import create_app
from provenance.auditor.sources import HttpTileSource
from provenance.auditor.tiles_audit import AuditPolicy, audit_tiles
from provenance.translog.checkpoint import parse_verifier_key
from provenance.translog.tiles import tiles_for_size
from tests.provenance.tiled_log import BuiltLog, build_log, cli, serve
from tests.provenance.translog import c2sp_tile_reader as spec

SIZES = [1, 255, 256, 257, 70_000]  # crosses tile boundaries; 70,000 is the spec's own example (levels 0, 1, 2)
FINAL = SIZES[-1]


def _client(built: BuiltLog) -> TestClient:
    service = SimpleNamespace(ledger=built.ledger, close=lambda: None)
    return TestClient(create_app(lambda: service, settings=built.settings, anchor=False))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltLog]:
    log = build_log(tmp_path_factory.mktemp("tlog") / "data", SIZES)
    yield log
    log.ledger.close()


@pytest.fixture(scope="module")
def client(built: BuiltLog) -> Iterator[TestClient]:
    with _client(built) as c:
        yield c


def _getter(client: TestClient) -> Callable[[str], bytes]:
    def get(path: str) -> bytes:
        resp = client.get("/" + path)
        assert resp.status_code == 200, (path, resp.status_code, resp.text[:200])
        return resp.content
    return get


def test_every_checkpoint_is_rebuilt_from_the_served_tiles(built: BuiltLog, client: TestClient) -> None:
    name, key = spec.parse_vkey(built.vkey)
    served = client.get("/checkpoint")
    assert served.content == built.notes[FINAL].encode()  # exactly the stored note
    latest = spec.verify_note(served.content, name, key)
    assert latest.size == FINAL
    for size, note in built.notes.items():
        cp = spec.verify_note(note.encode(), name, key)
        tree = spec.TiledTree(_getter(client), size)  # only the tiles this size's checkpoint names
        assert tree.root() == cp.root, size
    tree = spec.TiledTree(_getter(client), FINAL)
    assert tree.root() == latest.root
    assert {"tile/0/273.p/112", "tile/1/001.p/17", "tile/2/000.p/1"} <= tree.fetched


def test_entry_bundles_hold_the_logged_cids(built: BuiltLog, client: TestClient) -> None:
    tree = spec.TiledTree(_getter(client), FINAL)
    entries = [e for n in range(FINAL // 256 + 1) for e in tree.entries(n)]
    assert entries == [c.encode() for c in built.cids]
    assert tree.check_full_tiles() == 273 + 1  # every full level-0 tile, and the full level-1 tile
    assert tree.root() == spec.verify_note(built.notes[FINAL].encode(), *spec.parse_vkey(built.vkey)).root
    # at an earlier size the partial bundle is the prefix of the later full one
    small = spec.TiledTree(_getter(client), 257)
    assert small.entries(1) == [built.cids[256].encode()]


def test_proofs_computed_from_tiles_verify_against_signed_roots(built: BuiltLog, client: TestClient) -> None:
    name, key = spec.parse_vkey(built.vkey)
    roots = {size: spec.verify_note(note.encode(), name, key).root for size, note in built.notes.items()}
    tree = spec.TiledTree(_getter(client), FINAL)
    rng = random.Random(5)
    for size, root in roots.items():
        indices = {0, size - 1, size // 2, min(size - 1, 255), min(size - 1, 256)} | {rng.randrange(size) for _ in range(3)}
        for index in indices:
            leaf = spec.leaf_hash(built.cids[index].encode())
            proof = tree.inclusion_proof(index, size)
            assert spec.verify_inclusion(index, size, leaf, proof, root), (index, size)
            assert not spec.verify_inclusion(index, size, spec.leaf_hash(b"other"), proof, root)
        for older, old_root in roots.items():
            if older < size:
                proof = tree.consistency_proof(older, size)
                assert spec.verify_consistency(older, size, proof, old_root, root), (older, size)
                assert not spec.verify_consistency(older, size, proof, spec.leaf_hash(b"forged"), root)


def test_headers(client: TestClient) -> None:
    cp = client.get("/checkpoint")
    assert cp.headers["content-type"] == "text/plain; charset=utf-8"
    assert cp.headers["cache-control"] == "public, max-age=5" and cp.headers["access-control-allow-origin"] == "*"
    for path in ("/tile/0/000", "/tile/1/000", "/tile/0/273.p/112", "/tile/2/000.p/1"):
        resp = client.get(path)
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/octet-stream"
        assert resp.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert len(client.get("/tile/0/000").content) == 8192 and len(client.get("/tile/0/273.p/112").content) == 112 * 32
    raw = client.get("/tile/entries/000", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers and raw.headers["vary"] == "Accept-Encoding"
    with client.stream("GET", "/tile/entries/000", headers={"Accept-Encoding": "gzip"}) as resp:
        body = b"".join(resp.iter_raw())  # the bytes as sent, not decoded
    assert resp.headers["content-encoding"] == "gzip" and gzip.decompress(body) == raw.content
    assert len(body) < len(raw.content)


@pytest.mark.parametrize("path", [
    "/tile/0/274", "/tile/0/273", "/tile/0/273.p/113", "/tile/1/001", "/tile/1/001.p/18", "/tile/2/000",
    "/tile/2/000.p/2", "/tile/3/000.p/1", "/tile/entries/273", "/tile/entries/274.p/1", "/tile/0/x001/000",
])
def test_tiles_beyond_the_tree_are_404(client: TestClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found", resp.text


@pytest.mark.parametrize("path", [
    "/tile/00/000", "/tile/64/000", "/tile/0/1", "/tile/0/x000/001", "/tile/0/000.p/0", "/tile/0/000.p/256",
    "/tile/0/000.p/007", "/tile/foo/000", "/tile/entries/000.p", "/tile/0/001/002",
])
def test_malformed_tile_paths_are_400(client: TestClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_tile_path", resp.text


def test_an_empty_log_serves_no_checkpoint_and_no_tiles(tmp_path: Path) -> None:
    empty = build_log(tmp_path / "data", [])
    try:
        with _client(empty) as c:
            assert c.get("/checkpoint").status_code == 404
            assert c.get("/tile/0/000.p/1").status_code == 404
            assert c.get("/tile/entries/000.p/1").status_code == 404
        out = cli("--data-dir", str(empty.data_dir), "log", "export-tiles", str(tmp_path / "out"))
        assert out.returncode == 3 and "no checkpoint has been published yet" in out.stderr
    finally:
        empty.ledger.close()


def test_export_equals_a_real_server_byte_for_byte(built: BuiltLog, tmp_path: Path) -> None:
    out = tmp_path / "export"
    done = cli("--data-dir", str(built.data_dir), "log", "export-tiles", str(out))
    assert done.returncode == 0, done.stderr
    expected = {"checkpoint"} | {t.path for t in tiles_for_size(FINAL)}
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written == expected
    with serve(built.data_dir, tmp_path / "serve.log") as url, httpx.Client(base_url=url) as http:
        for path in sorted(expected):
            resp = http.get("/" + path)  # entry bundles come gzip-encoded; httpx decodes them
            assert resp.status_code == 200, path
            assert resp.content == (out / path).read_bytes(), path
        # the independent reader agrees with both, over real HTTP and from the directory
        name, key = spec.parse_vkey(built.vkey)
        cp = spec.verify_note(http.get("/checkpoint").content, name, key)

        def over_http(path: str) -> bytes:
            resp = http.get("/" + path)
            assert resp.status_code == 200, path
            return resp.content

        assert spec.TiledTree(over_http, FINAL).root() == cp.root
        # and the public audit passes over HTTP (levels 0-2, every entry)
        with HttpTileSource(url) as source:
            report = audit_tiles(source, AuditPolicy(log_key=parse_verifier_key(built.vkey)))
        assert report.ok and report.rebuilt_root == cp.root and len(report.records) == FINAL, report.summary()
        assert report.tiles_fetched == 273 + 1 + 1 + 1 + 1 + 274
    assert spec.TiledTree(lambda p: (out / p).read_bytes(), FINAL).root() == cp.root
