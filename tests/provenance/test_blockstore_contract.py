"""One contract for every block store (embedded directory and a real IPFS daemon), plus each one's own edges."""

from __future__ import annotations

import io
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from provenance.blockstore import BlockStore, IpfsRpcBlockStore, LocalBlockStore, make_blockstore
from provenance.blockstore.car import CborCid, car_header, cbor_decode, cbor_encode, read_car
from provenance.cid import cid_for_bytes, cid_from_bytes, cid_to_bytes, iter_unixfs_blocks, raw_cid
from provenance.config import Settings
from provenance.errors import (
    BlockNotFoundError,
    BlockStoreError,
    BlockStoreUnavailableError,
    IntegrityError,
    InvalidCIDError,
)
from tests.fixtures.services import free_port

HELLO = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def never_stored() -> str:
    """A well-formed CID of content nobody has (random, so a session-wide daemon cannot have it either)."""
    return raw_cid(os.urandom(32))


@pytest.fixture(params=["local", pytest.param("ipfs", marks=pytest.mark.ipfs)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlockStore]:
    if request.param == "local":
        local = LocalBlockStore(tmp_path / "blocks")
        yield local
        local.close()
    else:
        yield request.getfixturevalue("ipfs_store")


class TestBlockStoreContract:
    def test_is_a_block_store(self, store: BlockStore) -> None:
        assert isinstance(store, BlockStore)
        assert store.describe().split(":", 1)[0] in {"local", "ipfs"}

    def test_put_get_round_trip(self, store: BlockStore) -> None:
        assert store.put(b"hello world\n") == HELLO
        assert store.get(HELLO) == b"hello world\n"

    def test_put_is_idempotent(self, store: BlockStore) -> None:
        data = os.urandom(1000)
        first = store.put(data)
        assert store.put(data) == first == cid_for_bytes(data)
        assert store.get(first) == data

    def test_empty_content(self, store: BlockStore) -> None:
        cid = store.put(b"")
        assert cid == cid_for_bytes(b"")
        assert store.get(cid) == b""

    def test_large_blob_spans_chunks(self, store: BlockStore) -> None:
        data = os.urandom(600 * 1024)  # > 256 KiB: a dag-pb root over three raw leaves
        cid = store.put(data)
        assert cid == cid_for_bytes(data) and cid.startswith("bafybei")
        assert store.get(cid) == data
        assert store.has(cid) and store.is_pinned(cid)

    def test_get_missing(self, store: BlockStore) -> None:
        with pytest.raises(BlockNotFoundError):
            store.get(never_stored())

    @pytest.mark.parametrize("bad", ["", "not-a-cid", "bafy", HELLO[:-3]])
    def test_invalid_cid(self, store: BlockStore, bad: str) -> None:
        for call in (store.get, store.has, store.is_pinned):
            with pytest.raises(InvalidCIDError):
                call(bad)

    def test_has_and_is_pinned(self, store: BlockStore) -> None:
        missing = never_stored()
        assert not store.has(missing) and not store.is_pinned(missing)
        cid = store.put(os.urandom(100))
        assert store.has(cid) and store.is_pinned(cid)

    def test_other_spelling_of_a_cid(self, store: BlockStore) -> None:
        cid = store.put(b"spelling")
        assert store.get(cid.upper()) == b"spelling"  # 'B' multibase = same CID


# --- local store ---------------------------------------------------------------------------------------------------
def test_local_layout_is_sharded_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = LocalBlockStore(tmp_path)
    cid = store.put(b"layout")
    assert (tmp_path / cid[-3:-1] / cid).read_bytes() == b"layout"
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [cid]
    assert store.describe() == f"local:{tmp_path.resolve()}"


def test_local_tampered_file_is_an_integrity_error(tmp_path: Path) -> None:
    store = LocalBlockStore(tmp_path)
    cid = store.put(b"original bytes")
    (tmp_path / cid[-3:-1] / cid).write_bytes(b"altered bytes!")
    with pytest.raises(IntegrityError):
        store.get(cid)
    with pytest.raises(IntegrityError):
        store.export_car([cid], io.BytesIO())


def test_local_export_car_structure(tmp_path: Path) -> None:
    store = LocalBlockStore(tmp_path)
    big, small = os.urandom(700_000), b"small"
    roots = [store.put(big), store.put(small)]
    out = tmp_path / "export.car"
    written = store.export_car(roots + roots[:1], out)  # a repeated root is written once
    buf = out.read_bytes()
    assert written == len(buf)
    got_roots, sections = read_car(buf)
    blocks = list(sections)
    assert got_roots == roots
    assert dict(blocks) == dict(iter_unixfs_blocks(big)) | dict(iter_unixfs_blocks(small))
    assert len(blocks) == 3 + 1 + 1  # three leaves + the dag-pb root, and the small raw block
    for cid, _block in blocks:
        assert cid_from_bytes(cid) in roots or cid[1] == 0x55


def test_car_header_is_dag_cbor() -> None:
    header = car_header([HELLO])
    body = cbor_encode({"version": 1, "roots": [CborCid(cid_to_bytes(HELLO))]})
    # map(2) "roots" array(1) tag(42) bytes(37) 0x00 CID, "version" 1: shorter key first, as DAG-CBOR orders them
    assert body[:9] == bytes([0xA2, 0x65]) + b"roots" + bytes([0x81, 0xD8])
    assert body.endswith(bytes([0x67]) + b"version" + bytes([0x01]))
    assert header == bytes([len(body)]) + body
    assert cbor_decode(body) == {"roots": [cid_to_bytes(HELLO)], "version": 1}
    with pytest.raises(ValueError):
        car_header([])


def test_local_export_car_of_missing_content(tmp_path: Path) -> None:
    with pytest.raises(BlockNotFoundError):
        LocalBlockStore(tmp_path).export_car([never_stored()], io.BytesIO())


@pytest.mark.ipfs
def test_local_car_imports_into_the_daemon(tmp_path: Path, ipfs_api_url: str, ipfs_store: IpfsRpcBlockStore) -> None:
    local = LocalBlockStore(tmp_path)
    contents = [os.urandom(3 * 262144 + 11), os.urandom(5000), b""]
    cids = [local.put(c) for c in contents]
    car = io.BytesIO()
    local.export_car(cids, car)
    files = {"file": ("export.car", car.getvalue(), "application/vnd.ipld.car")}
    response = httpx.post(f"{ipfs_api_url}/api/v0/dag/import", files=files, timeout=120)
    response.raise_for_status()
    imported = {json.loads(line)["Root"]["Cid"]["/"] for line in response.text.splitlines() if line.strip()}
    assert imported == set(cids)
    for cid, content in zip(cids, contents, strict=True):
        cat = httpx.post(f"{ipfs_api_url}/api/v0/cat", params={"arg": cid}, timeout=60)
        assert cat.status_code == 200 and cat.content == content
        assert ipfs_store.get(cid) == content and ipfs_store.is_pinned(cid)


# --- IPFS client edges -----------------------------------------------------------------------------------------------
def test_daemon_down_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # bound then released: nothing listens there
    with IpfsRpcBlockStore(url, timeout_s=2) as store:
        for call in (lambda: store.put(b"x"), lambda: store.get(HELLO), lambda: store.has(HELLO), store.ping):
            with pytest.raises(BlockStoreUnavailableError) as caught:
                call()
            assert f"IPFS daemon unreachable at {url}" in str(caught.value)
            assert caught.value.where == url


def test_daemon_that_never_answers_is_unavailable() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with IpfsRpcBlockStore(url, timeout_s=0.5) as store, pytest.raises(BlockStoreUnavailableError):
            store.put(b"x")


def test_daemon_that_resets_the_connection_is_unavailable() -> None:
    """A daemon dying mid-request resets the connection (found by tests/chaos while IPFS stopped: it was a 500)."""
    import struct
    import threading

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)

        def reset_each() -> None:
            for _ in range(2):  # httpx may retry the connection once
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                conn.settimeout(0.3)
                try:  # the whole request, so that the client is waiting for the answer when the reset comes
                    while conn.recv(65536):
                        pass
                except OSError:
                    pass
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
                conn.close()

        threading.Thread(target=reset_each, daemon=True).start()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with IpfsRpcBlockStore(url, timeout_s=5) as store, pytest.raises(BlockStoreUnavailableError) as caught:
            store.put(b"x")
        assert caught.value.where == url and "ReadError" in str(caught.value)


def fake_daemon(handler: object) -> IpfsRpcBlockStore:
    return IpfsRpcBlockStore("http://fake:5001", transport=httpx.MockTransport(handler))  # type: ignore[arg-type]


def test_daemon_returning_a_wrong_cid_is_an_integrity_error() -> None:
    store = fake_daemon(lambda request: httpx.Response(200, json={"Name": "blob", "Hash": HELLO, "Size": "12"}))
    with pytest.raises(IntegrityError):
        store.put(b"not hello")
    assert store.put(b"hello world\n") == HELLO


def test_daemon_returning_altered_bytes_is_an_integrity_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/pin/ls"):
            return httpx.Response(200, json={"Keys": {HELLO: {"Type": "recursive"}}})
        return httpx.Response(200, content=b"hello w0rld\n")

    with pytest.raises(IntegrityError):
        fake_daemon(handler).get(HELLO)


def test_daemon_error_is_a_block_store_error() -> None:
    store = fake_daemon(lambda request: httpx.Response(500, json={"Message": "disk full", "Code": 0}))
    with pytest.raises(BlockStoreError, match="disk full"):
        store.put(b"x")


def test_daemon_that_cannot_serve_now_is_unavailable() -> None:
    """A daemon answering 5xx (js-ipfs while it shuts down: "Database is not open") is down for now, not broken for
    good: unavailable, so an upload gets 503 naming it and a worker retries (found by tests/chaos: it was a 500,
    and a worker step would have failed the ingest for good). A 4xx stays a plain error: our request was bad."""
    store = fake_daemon(lambda request: httpx.Response(500, json={"Message": "Database is not open", "Code": 0}))
    with pytest.raises(BlockStoreUnavailableError, match="Database is not open") as caught:
        store.put(b"x")
    assert caught.value.where == "http://fake:5001"
    refused = fake_daemon(lambda request: httpx.Response(400, json={"Message": "bad arg", "Code": 1}))
    with pytest.raises(BlockStoreError, match="bad arg") as plain:
        refused.put(b"x")
    assert not isinstance(plain.value, BlockStoreUnavailableError)


# --- factory ---------------------------------------------------------------------------------------------------------
def test_make_blockstore(tmp_path: Path) -> None:
    local = make_blockstore(Settings(data_dir=tmp_path))
    assert isinstance(local, LocalBlockStore) and local.describe() == f"local:{(tmp_path / 'blocks').resolve()}"
    remote = make_blockstore(Settings(blockstore="ipfs", ipfs_api_url="http://10.0.0.9:5001/", ipfs_timeout_s=5))
    assert isinstance(remote, IpfsRpcBlockStore) and remote.describe() == "ipfs:http://10.0.0.9:5001"
    remote.close()
