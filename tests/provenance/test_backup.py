"""Backup and restore (issue 16): one archive with the database, the block store (or its pins), the keyring
(encrypted) and the index catalog; a restore into a fresh data directory audits with the same checkpoints; a
corrupt archive, a wrong passphrase, a missing passphrase and a non-empty target are refused, with nothing written."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text

from provenance.api.keys import authenticate, create_api_key
from provenance.backup import make_backup, restore_backup
from provenance.backup.archive import MANIFEST_NAME
from provenance.config import Settings
from provenance.db import make_engine
from provenance.errors import BackupArchiveError, BackupPassphraseError, RestoreTargetError
from provenance.index.service import HashIndex
from provenance.migrations import head_revision
from provenance.records import PerceptualHash, PublisherMetadata
from provenance.services import open_ledger
from tests.fixtures.db import _with_search_path
from tests.provenance.legacy_db import build_legacy_database, png

BIN = Path(sys.executable).parent / "provenance"
PASSPHRASE = "correct horse battery staple"


def code(i: int) -> str:
    return f"{0x5a5a5a5a5a5a5a5a ^ (i * 0x0101):016x}"


def run(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
    full.update(env or {})
    return subprocess.run([str(BIN), "--data-dir", str(data_dir), *args], capture_output=True, text=True, env=full,
                          stdin=subprocess.DEVNULL, timeout=300)


def _env(url: str | None, **extra: str) -> dict[str, str]:
    env = {"PROVENANCE_BACKUP_PASSPHRASE": PASSPHRASE, **extra}
    if url is not None:
        env["PROVENANCE_DATABASE_URL"] = url
    return env


@pytest.fixture
def pg_target_url(pg_url: str) -> Iterator[str]:
    """A second empty PostgreSQL schema: where a PostgreSQL source is restored."""
    schema = f"prov_restore_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield _with_search_path(pg_url, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def fill_ledger(settings: Settings, *, anchor: bool) -> dict[str, object]:
    """A custodial and a publisher-custody publisher, three records with catalog rows, two checkpoints, an API key."""
    ledger = open_ledger(settings)
    try:
        ledger.add_publisher("acme")
        ledger.add_publisher("herald", Ed25519PrivateKey.generate().public_key())  # its private key is not ours
        index = HashIndex(settings.data_dir, ledger.engine)
        cids = []
        for i in range(3):
            res = ledger.ingest(png(i), publisher="acme", metadata=PublisherMetadata(title=f"photo {i}"),
                                hashes=(PerceptualHash("phash", "phash-v1", 64, code(i)),))
            index.add("phash", res.cid, "acme", code(i))
            cids.append(res.cid)
            if i == 1:
                ledger.anchor() if anchor else ledger.checkpoint()
        ledger.anchor() if anchor else ledger.checkpoint()
        index.close()
        return {"cids": cids, "api_key": create_api_key(ledger.engine, "acme")}
    finally:
        ledger.close()


def checkpoint_rows(url: str) -> list[tuple[object, ...]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(
                "SELECT tree_size, root, note, anchor_chain_id, anchor_tx, anchor_block FROM checkpoints "
                "ORDER BY tree_size"))]
    finally:
        engine.dispose()


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _backup_restore_audit(src: Path, dst: Path, archive: Path, src_url: str | None, dst_url: str | None,
                          via_cli: bool) -> tuple[dict, dict, dict]:  # type: ignore[type-arg]
    """Backup, restore, audit: as an operator runs them (separate processes), or through the Python API."""
    if via_cli:
        backed = run(src, "backup", str(archive), "--json", env=_env(src_url))
        assert backed.returncode == 0, backed.stderr
        restored = run(dst, "restore", str(archive), "--json", env=_env(dst_url))
        assert restored.returncode == 0, restored.stdout + restored.stderr
        audit = run(dst, "audit", "--json", env=_env(dst_url))
        assert audit.returncode == 0, audit.stdout + audit.stderr
        return json.loads(backed.stdout), json.loads(restored.stdout), json.loads(audit.stdout)
    from provenance.audit import audit_ledger

    manifest = make_backup(Settings(data_dir=src, database_url=src_url), archive, PASSPHRASE)
    report = restore_backup(Settings(data_dir=dst, database_url=dst_url), archive, PASSPHRASE)
    ledger = open_ledger(Settings(data_dir=dst, database_url=dst_url))
    try:
        audited = audit_ledger(ledger, log_public_key=ledger.log_public_key(), anchor=None).to_obj()
    finally:
        ledger.close()
    return manifest, report, audited


@pytest.mark.parametrize("source,target,via_cli", [
    ("sqlite", "sqlite", True),
    pytest.param("postgres", "postgres", True, marks=pytest.mark.postgres),
    pytest.param("sqlite", "postgres", False, marks=pytest.mark.postgres),  # embedded -> served
    pytest.param("postgres", "sqlite", False, marks=pytest.mark.postgres),
])
def test_restore_into_a_fresh_data_dir_audits_with_the_same_checkpoints(
        source: str, target: str, via_cli: bool, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    src_url = None if source == "sqlite" else request.getfixturevalue("pg_schema_url")
    dst_url = None if target == "sqlite" else request.getfixturevalue("pg_target_url")
    src, dst, archive = tmp_path / "src", tmp_path / "dst", tmp_path / "backup.tar"
    src_settings = Settings(data_dir=src, database_url=src_url)
    made = fill_ledger(src_settings, anchor=True)

    manifest, report, result = _backup_restore_audit(src, dst, archive, src_url, dst_url, via_cli)
    assert manifest["database"]["kind"] == ("sqlite" if source == "sqlite" else "rows")
    assert manifest["ledger"]["records"] == 3 and manifest["ledger"]["checkpoints"] == 2
    assert manifest["blockstore"]["blocks"] == 8  # 3 images, 3 records, 2 registrations
    assert manifest["keyring"]["files"] == 2  # the service key and acme's custodial key; herald holds its own
    assert report["ledger"] == manifest["ledger"] and not report["missing_cids"] and not report["mismatch"]
    assert report["index"] == {"phash": 3} and report["schema_revision"] == head_revision()
    assert result["ok"] and result["records_verified"] == 3 and result["checkpoints"] == 2
    assert [a["status"] for a in result["anchors"]] == ["ephemeral", "ephemeral"]

    resolved_src = src_settings.resolved_database_url
    resolved_dst = Settings(data_dir=dst, database_url=dst_url).resolved_database_url
    assert checkpoint_rows(resolved_dst) == checkpoint_rows(resolved_src)  # same roots, notes and anchors
    assert files_under(dst / "keys") == files_under(src / "keys")
    assert files_under(dst / "blocks") == files_under(src / "blocks")
    engine = make_engine(resolved_dst)
    try:
        assert authenticate(engine, str(made["api_key"])) == "acme"
        index = HashIndex(dst, engine)  # loads the files the restore built from the catalog
        assert [m.record_cid for m in index.search("phash", code(1), k=1)] == [made["cids"][1]]
        index.close()
    finally:
        engine.dispose()
    # the restored service carries on: a new record under the restored custodial key, in a new checkpoint
    ledger = open_ledger(Settings(data_dir=dst, database_url=dst_url))
    try:
        ledger.ingest(png(7), publisher="acme", metadata=PublisherMetadata(title="after"),
                      hashes=(PerceptualHash("phash", "phash-v1", 64, code(7)),))
        assert ledger.checkpoint().tree_size == 6
    finally:
        ledger.close()


@pytest.fixture(scope="module")
def made_backup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A SQLite deployment and its backup (checkpoints, no anchors), made once for the refusal tests."""
    root = tmp_path_factory.mktemp("made")
    settings = Settings(data_dir=root / "src")
    fill_ledger(settings, anchor=False)
    archive = root / "backup.tar"
    make_backup(settings, archive, PASSPHRASE)
    return root / "src", archive


def _rewrite(archive: Path, out: Path, change) -> None:  # type: ignore[no-untyped-def]
    """Copy ``archive`` to ``out`` with ``change(name, data) -> data`` applied to every member."""
    with tarfile.open(archive) as src, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as dst:
        for info in src:
            data = src.extractfile(info).read()  # type: ignore[union-attr]
            data = change(info.name, data)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))


def test_the_keyring_is_encrypted_in_the_archive(made_backup: tuple[Path, Path]) -> None:
    src, archive = made_backup
    raw = archive.read_bytes()
    assert b"PRIVATE KEY" not in raw
    for pem in (src / "keys").rglob("*.pem"):
        body = b"".join(pem.read_bytes().splitlines()[1:-1])
        assert body not in raw
    assert oct(archive.stat().st_mode & 0o777) == "0o600"


def test_a_corrupt_archive_is_refused_and_nothing_is_written(made_backup: tuple[Path, Path], tmp_path: Path) -> None:
    _, archive = made_backup
    target = Settings(data_dir=tmp_path / "dst")

    flipped: list[str] = []

    def flip(name: str, data: bytes) -> bytes:  # one bit of the first block
        if not name.startswith("blocks/") or flipped:
            return data
        flipped.append(name)
        return data[:-1] + bytes([data[-1] ^ 1])

    corrupt = tmp_path / "corrupt.tar"
    _rewrite(archive, corrupt, flip)
    with pytest.raises(BackupArchiveError, match=f"is corrupt: member {flipped[0]} has sha256"):
        restore_backup(target, corrupt, PASSPHRASE)

    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(BackupArchiveError, match="corrupt or truncated|no MANIFEST.json"):
        restore_backup(target, truncated, PASSPHRASE)

    not_tar = tmp_path / "notes.txt"
    not_tar.write_text("hello")
    with pytest.raises(BackupArchiveError, match="not a backup archive"):
        restore_backup(target, not_tar, PASSPHRASE)
    assert not target.data_dir.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".dst")] == []


def test_a_wrong_passphrase_is_refused_and_nothing_is_written(made_backup: tuple[Path, Path], tmp_path: Path) -> None:
    _, archive = made_backup
    target = Settings(data_dir=tmp_path / "dst")
    with pytest.raises(BackupPassphraseError, match="wrong passphrase"):
        restore_backup(target, archive, "correct horse battery stapler")
    assert not target.data_dir.exists()


def test_an_altered_archive_with_a_recomputed_manifest_is_refused(made_backup: tuple[Path, Path],
                                                                 tmp_path: Path) -> None:
    """SHA-256s alone catch corruption; the MAC catches a rewrite: a replaced database with a manifest whose hashes
    were recomputed does not authenticate without the passphrase."""
    _, archive = made_backup
    swapped: dict[str, str] = {}

    def change(name: str, data: bytes) -> bytes:
        import hashlib

        if name == "database/ledger.sqlite3":
            data = data + b"\0" * 512
            swapped[name] = hashlib.sha256(data).hexdigest()
        if name == MANIFEST_NAME:
            manifest = json.loads(data)
            for member, digest in swapped.items():
                manifest["members"][member] = {"sha256": digest, "size": manifest["members"][member]["size"] + 512}
            data = json.dumps(manifest).encode()
        return data

    altered = tmp_path / "altered.tar"
    _rewrite(archive, altered, change)
    with pytest.raises(BackupPassphraseError, match="manifest was altered"):
        restore_backup(Settings(data_dir=tmp_path / "dst"), altered, PASSPHRASE)
    assert not (tmp_path / "dst").exists()


def test_a_non_empty_data_dir_is_refused_unless_force(made_backup: tuple[Path, Path], tmp_path: Path) -> None:
    _, archive = made_backup
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "notes.txt").write_text("keep me")
    with pytest.raises(RestoreTargetError, match="is not empty"):
        restore_backup(Settings(data_dir=dst), archive, PASSPHRASE)
    assert sorted(p.name for p in dst.iterdir()) == ["notes.txt"]

    report = restore_backup(Settings(data_dir=dst), archive, PASSPHRASE, force=True)
    assert report["ledger"]["records"] == 3 and (dst / "ledger.sqlite3").is_file()
    (aside,) = report["moved_aside"]
    assert (Path(aside) / "notes.txt").read_text() == "keep me"  # moved aside, not deleted


def test_a_database_holding_data_is_refused(made_backup: tuple[Path, Path], tmp_path: Path) -> None:
    """A SQLite file configured outside the (empty) data directory that already exists is not overwritten."""
    _, archive = made_backup
    other = tmp_path / "elsewhere.sqlite3"
    other.write_bytes(b"not empty")
    settings = Settings(data_dir=tmp_path / "dst", database_url=f"sqlite:///{other}")
    with pytest.raises(RestoreTargetError, match="exists: give --force"):
        restore_backup(settings, archive, PASSPHRASE)
    assert other.read_bytes() == b"not empty" and not (tmp_path / "dst").exists()


def test_without_a_passphrase_both_commands_refuse_and_never_prompt(made_backup: tuple[Path, Path],
                                                                    tmp_path: Path) -> None:
    src, archive = made_backup
    out = run(src, "backup", str(tmp_path / "b.tar"))
    assert out.returncode == 3, out.stdout + out.stderr
    assert "no backup passphrase: set PROVENANCE_BACKUP_PASSPHRASE" in out.stderr
    assert not (tmp_path / "b.tar").exists() and list(tmp_path.iterdir()) == []
    back = run(tmp_path / "dst", "restore", str(archive))
    assert back.returncode == 3 and "no backup passphrase" in back.stderr
    assert not (tmp_path / "dst").exists()
    with pytest.raises(BackupPassphraseError, match="at least 12 characters"):
        make_backup(Settings(data_dir=src), tmp_path / "b.tar", "short")
    assert not (tmp_path / "b.tar").exists()


def test_a_backup_of_a_0001_database_restores_at_the_head(tmp_path: Path) -> None:
    """A backup made before an upgrade (schema 0001, no alembic_version) restores, upgraded, and audits."""
    from provenance.audit import audit_ledger

    src = tmp_path / "src"
    src.mkdir()
    legacy = build_legacy_database(f"sqlite:///{(src / 'ledger.sqlite3')}", src)
    archive = tmp_path / "old.tar"
    manifest = make_backup(Settings(data_dir=src), archive, PASSPHRASE)
    assert manifest["schema_revision"] == "0001" and manifest["ledger"]["records"] == 4
    report = restore_backup(Settings(data_dir=tmp_path / "dst"), archive, PASSPHRASE)
    assert (report["schema_revision_archived"], report["schema_revision"]) == ("0001", head_revision())
    ledger = open_ledger(Settings(data_dir=tmp_path / "dst"))
    try:
        audited = audit_ledger(ledger, log_public_key=ledger.log_public_key(), anchor=None)
        assert audited.ok, audited.summary()
        assert audited.records_verified == 4 and audited.checkpoints == len(legacy.checkpoint_sizes)
    finally:
        ledger.close()


@pytest.mark.ipfs
def test_an_ipfs_deployment_backs_up_its_pins_and_restore_pins_them_again(ipfs_api_url: str, tmp_path: Path) -> None:
    """With IPFS the archive lists every CID the database needs; a restore pins them again (a pin lost meanwhile
    comes back). With --include-blocks the archive carries the blocks too, and restores onto a local store."""
    import httpx

    from provenance.audit import audit_ledger
    from provenance.blockstore import IpfsRpcBlockStore

    ipfs = {"blockstore": "ipfs", "ipfs_api_url": ipfs_api_url, "ipfs_timeout_s": 120.0}
    src = Settings(data_dir=tmp_path / "src", **ipfs)
    made = fill_ledger(src, anchor=False)
    pins_only, with_blocks = tmp_path / "pins.tar", tmp_path / "blocks.tar"
    manifest = make_backup(src, pins_only, PASSPHRASE)
    assert manifest["blockstore"]["kind"] == "ipfs" and manifest["blockstore"]["blocks"] == 0
    assert manifest["blockstore"]["pins"] == 8
    lost = str(made["cids"][0])
    httpx.post(f"{ipfs_api_url}/api/v0/pin/rm", params={"arg": lost}, timeout=60).raise_for_status()
    store = IpfsRpcBlockStore(ipfs_api_url, timeout_s=120.0)
    try:
        assert not store.is_pinned(lost)
        report = restore_backup(Settings(data_dir=tmp_path / "dst", **ipfs), pins_only, PASSPHRASE)
        assert report["pins"] == 8 and report["missing_cids"] == [] and report["blocks_restored"] == 0
        assert store.is_pinned(lost)
    finally:
        store.close()

    # a pins-only archive restored onto a local block store: the database is there, its blocks are not (said)
    bare = restore_backup(Settings(data_dir=tmp_path / "bare"), pins_only, PASSPHRASE)
    assert len(bare["missing_cids"]) == 8 and "8 of 8 blocks the database refers to are not in the block store" in \
        bare["warnings"][-1]

    make_backup(src, with_blocks, PASSPHRASE, include_blocks=True)
    local = Settings(data_dir=tmp_path / "local")  # the embedded block store: no daemon needed from here on
    report = restore_backup(local, with_blocks, PASSPHRASE)
    assert report["blocks_restored"] == 8 and report["missing_cids"] == []
    ledger = open_ledger(local)
    try:
        audited = audit_ledger(ledger, log_public_key=ledger.log_public_key(), anchor=None)
        assert audited.ok and audited.records_verified == 3, audited.summary()
    finally:
        ledger.close()
