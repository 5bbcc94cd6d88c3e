"""``provenance backup`` and ``provenance restore``: the database, the block store (or its pins), the keyring and
the index catalog (in the database; index files are rebuilt) in one verified, passphrase-protected archive.

Backup order follows the ledger's write order: the database snapshot first, then the blocks and the keyring. Every
record in the snapshot had its blobs written before its row, and keys are created before the rows that name them,
so everything the snapshot refers to is in the archive (blocks and keys created after it are harmless extras).

Restore checks everything before it writes anything: the target is empty (or ``--force``), the archive is intact
(every member's SHA-256), the passphrase authenticates the manifest and decrypts the keyring, the revision is one
this code knows. It then builds the new data directory beside the target and renames it into place; a PostgreSQL
target is loaded in one transaction. A failure on the way leaves the target as it was.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from provenance.backup import database as db_backup
from provenance.backup.archive import ArchiveWriter, BackupArchive, open_archive
from provenance.backup.keyring_archive import pack_keyring, unpack_keyring, write_keyring
from provenance.backup.sealing import derive_keys, new_kdf_params, open_sealed, seal
from provenance.blockstore import BlockStore, IpfsRpcBlockStore, LocalBlockStore, make_blockstore
from provenance.cid import parse_cid
from provenance.config import Settings
from provenance.db import create_schema, make_engine, reader
from provenance.errors import (
    BackupArchiveError,
    BackupError,
    BackupPassphraseError,
    BlockStoreError,
    RestoreTargetError,
    SchemaVersionError,
)
from provenance.logging import get_logger
from provenance.migrations import current_state, head_revision
from provenance.migrations.runner import _known, build_schema, schema_lock, upgrade_connection

__all__ = ["MIN_PASSPHRASE_CHARS", "make_backup", "restore_backup"]

log = get_logger(__name__)

MIN_PASSPHRASE_CHARS = 12
KEYRING_MEMBER = "keyring.sealed"
PINS_MEMBER = "blockstore/pins.txt"
BLOCKS_PREFIX = "blocks/"


# --- backup ---------------------------------------------------------------------------------------------------------
def make_backup(settings: Settings, out: Path, passphrase: str, *, include_blocks: bool = False,
                force: bool = False) -> dict[str, Any]:
    """Write the archive ``out``; returns its manifest. ``include_blocks``: with an IPFS block store, copy every
    referenced block into the archive too (a local store's blocks are always in it)."""
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise BackupPassphraseError(f"the backup passphrase must have at least {MIN_PASSPHRASE_CHARS} characters")
    out = out.resolve()
    if out.exists() and not force:
        raise BackupError(f"{out} exists: choose another name, or --force to replace it")
    if not out.parent.is_dir():
        raise BackupError(f"cannot write {out}: {out.parent} is not a directory")
    engine = make_engine(settings.resolved_database_url)
    blockstore = make_blockstore(settings)
    try:
        state = current_state(engine)
        if state.fresh:
            raise BackupError(f"nothing to back up: the database ({_where(settings)}) has no provenance tables")
        revision = state.effective_revision
        if revision is None or not _known(revision):
            raise SchemaVersionError(f"cannot back up a database whose revision is {state.describe()}")
        kdf = new_kdf_params()
        keys = derive_keys(passphrase, kdf)
        with ArchiveWriter(out) as writer, tempfile.TemporaryDirectory(dir=out.parent, prefix=".backup-") as tmp:
            database, summary, pins = _backup_database(engine, Path(tmp), writer)
            writer.add_bytes(PINS_MEMBER, ("".join(f"{c}\n" for c in pins)).encode("ascii"))
            blocks = _backup_blocks(blockstore, pins, writer, include_blocks)
            keyring, key_files = pack_keyring(settings.keyring_dir)
            writer.add_bytes(KEYRING_MEMBER, seal(keys, keyring))
            manifest = writer.finish({
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "schema_revision": revision,
                "database": database,
                "blockstore": {"kind": settings.blockstore, "source": blockstore.describe(), "blocks": blocks,
                               "pins": len(pins), "pins_member": PINS_MEMBER},
                "keyring": {"member": KEYRING_MEMBER, "files": key_files, "cipher": "AES-256-GCM"},
                "ledger": summary,
                "settings": {"log_origin": settings.log_origin, "log_key_name": settings.log_key_name},
                "kdf": kdf,
            }, keys)
    finally:
        blockstore.close()
        engine.dispose()
    log.info("backup.written", path=str(out), records=summary["records"], blocks=blocks, key_files=key_files)
    return manifest


def _where(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


def _backup_database(engine: Engine, tmp: Path, writer: ArchiveWriter) -> tuple[dict[str, Any], dict[str, Any],
                                                                               list[str]]:
    if engine.dialect.name == "sqlite":
        snap = tmp / "ledger.sqlite3"
        db_backup.snapshot_sqlite(engine, snap)
        snap_engine = make_engine(f"sqlite:///{snap}")
        try:
            with reader(snap_engine).connect() as conn:
                summary, pins = ledger_summary(conn), referenced_cids(conn)
        finally:
            snap_engine.dispose()
        writer.add_file(db_backup.SQLITE_MEMBER, snap)
        return {"kind": "sqlite", "member": db_backup.SQLITE_MEMBER}, summary, pins
    rows = tmp / "rows.jsonl.gz"
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SET TRANSACTION READ ONLY"))
            tables = db_backup.dump_rows(conn, rows)
            summary, pins = ledger_summary(conn), referenced_cids(conn)
    writer.add_file(db_backup.ROWS_MEMBER, rows)
    return {"kind": "rows", "dialect": engine.dialect.name, "member": db_backup.ROWS_MEMBER,
            "tables": tables}, summary, pins


def ledger_summary(conn: Connection) -> dict[str, Any]:
    """What a restore must reproduce, in figures: counts and the latest checkpoint (any revision)."""
    names = set(inspect(conn).get_table_names())

    def count(table: str) -> int:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0) if table in names else 0

    latest = conn.execute(text("SELECT tree_size, root FROM checkpoints ORDER BY tree_size DESC LIMIT 1")).first()
    return {
        "records": count("records"), "key_events": count("key_events"), "publishers": count("publishers"),
        "checkpoints": count("checkpoints"), "index_entries": count("index_entries"),
        "log_size": int(conn.execute(text("SELECT size FROM log_state WHERE id = 1")).scalar() or 0),
        "latest_checkpoint": None if latest is None else {"tree_size": int(latest[0]), "root": bytes(latest[1]).hex()},
    }


def referenced_cids(conn: Connection) -> list[str]:
    """Every CID the database needs from the block store: records and their images, key events, and the images
    of ingest tasks not yet finished. In this order, without repeats."""
    names = set(inspect(conn).get_table_names())
    queries = ["SELECT cid, image_cid FROM records ORDER BY leaf_index"]
    if "key_events" in names:
        queries.append("SELECT cid FROM key_events ORDER BY leaf_index")
    if "ingest_tasks" in names:
        queries.append("SELECT image_cid FROM ingest_tasks WHERE state IN ('pending', 'running') ORDER BY id")
    seen: dict[str, None] = {}
    for q in queries:
        for row in conn.execute(text(q)):
            for cid in row:
                seen.setdefault(str(cid), None)
    return list(seen)


def _backup_blocks(store: BlockStore, pins: list[str], writer: ArchiveWriter, include_blocks: bool) -> int:
    if isinstance(store, LocalBlockStore):
        names = _local_block_names(store.root)
    elif include_blocks:
        names = pins
    else:
        return 0
    for cid in names:
        try:
            writer.add_bytes(BLOCKS_PREFIX + cid, store.get(cid))  # get() verifies the bytes against the CID
        except BlockStoreError as exc:
            raise BackupError(f"block {cid} cannot be backed up: {exc}") from exc
    return len(names)


def _local_block_names(root: Path) -> list[str]:
    """Every content file of a local block store (all of it, referenced or not: uploads waiting in the queue too)."""
    if not root.is_dir():
        return []
    return sorted(p.name for shard in root.iterdir() if shard.is_dir() for p in shard.iterdir()
                  if p.is_file() and not p.name.startswith("."))


# --- restore --------------------------------------------------------------------------------------------------------
def restore_backup(settings: Settings, archive_path: Path, passphrase: str, *, force: bool = False) -> dict[str, Any]:
    """Restore ``archive_path`` into the data directory and database of ``settings``; returns a report."""
    data_dir = settings.data_dir.resolve()
    url = settings.resolved_database_url
    sqlite_target = db_backup.sqlite_file(url)
    _check_targets(data_dir, url, sqlite_target, force)
    if settings.blockstore == "ipfs":  # it is written last: make sure it answers before anything is written
        probe = make_blockstore(settings)
        try:
            probe.ping()  # type: ignore[attr-defined]
        finally:
            probe.close()
    with open_archive(archive_path.resolve(), passphrase) as archive:
        manifest = archive.manifest
        revision = str(manifest.get("schema_revision"))
        if not _known(revision):
            raise SchemaVersionError(f"the backup is of schema revision {revision}, unknown to this version of "
                                     f"provenance (head {head_revision()}): restore it with the version that made it")
        key_files = unpack_keyring(open_sealed(archive.keys, archive.read_bytes(KEYRING_MEMBER)))
        database = manifest.get("database") or {}
        if database.get("kind") not in ("sqlite", "rows") or not archive.has(str(database.get("member"))):
            raise BackupArchiveError("the manifest names no database member this version can read")
        staging = data_dir.parent / f".{data_dir.name}.restoring-{secrets.token_hex(4)}"
        staging.mkdir(mode=0o700, parents=True)
        try:
            write_keyring(staging / "keys", key_files)
            blocks_written = _restore_local_blocks(archive, settings, staging)
            staged_db = _restore_database(archive, database, revision, url, sqlite_target, data_dir, staging, force)
            moved_aside = _swap_into_place(staging, data_dir, staged_db, sqlite_target, force)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        pins = archive.read_bytes(PINS_MEMBER).decode("ascii").split() if archive.has(PINS_MEMBER) else []
        ipfs_blocks = _restore_ipfs_blocks(archive, settings)
    report = _finish(settings, data_dir, pins)
    expected = manifest.get("ledger")
    if expected is not None and report["ledger"] != expected:
        report["warnings"].append(f"the restored ledger ({report['ledger']}) differs from what the backup recorded "
                                  f"({expected})")
        report["mismatch"] = True
    report.update({
        "archive": str(archive_path), "schema_revision_archived": revision, "schema_revision": head_revision(),
        "key_files": len(key_files), "blocks_restored": blocks_written + ipfs_blocks, "moved_aside": moved_aside,
        "expected": expected, "warnings": _setting_warnings(manifest, settings) + report["warnings"],
    })
    log.info("backup.restored", archive=str(archive_path), records=report["ledger"]["records"],
             missing_blocks=len(report["missing_cids"]))
    return report


def _check_targets(data_dir: Path, url: str, sqlite_target: Path | None, force: bool) -> None:
    if force:
        return
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise RestoreTargetError(f"the data directory {data_dir} is not empty: restore into an empty or new "
                                 "directory, or give --force (its contents are then moved aside, not deleted)")
    if sqlite_target is not None:
        if sqlite_target.exists() and sqlite_target.stat().st_size > 0:
            raise RestoreTargetError(f"the database file {sqlite_target} exists: give --force to replace it")
        return
    engine = make_engine(url)
    try:
        with reader(engine).connect() as conn:
            busy = db_backup.occupied_tables(conn)
    finally:
        engine.dispose()
    if busy:
        raise RestoreTargetError(f"the database already holds data (tables {', '.join(busy)}): restore into an "
                                 "empty database, or give --force to drop provenance's tables first")


def _restore_local_blocks(archive: BackupArchive, settings: Settings, staging: Path) -> int:
    if settings.blockstore != "local":
        return 0
    store = LocalBlockStore(staging / "blocks")
    n = 0
    for name, data in archive.iter_bytes(BLOCKS_PREFIX):
        _put_block(store, name, data)
        n += 1
    return n


def _restore_ipfs_blocks(archive: BackupArchive, settings: Settings) -> int:
    if settings.blockstore != "ipfs" or not archive.names(BLOCKS_PREFIX):
        return 0
    store = make_blockstore(settings)
    try:
        n = 0
        for name, data in archive.iter_bytes(BLOCKS_PREFIX):
            _put_block(store, name, data)  # IPFS add pins what it adds
            n += 1
        return n
    finally:
        store.close()


def _put_block(store: BlockStore, name: str, data: bytes) -> None:
    want = name[len(BLOCKS_PREFIX):]
    try:
        canonical = str(parse_cid(want))
    except Exception as exc:  # noqa: BLE001 - InvalidCIDError and parser errors alike: the name is not a CID
        raise BackupArchiveError(f"archive member {name} is not named by a CID") from exc
    got = store.put(data)
    if got != canonical:
        raise BackupArchiveError(f"archive member {name} holds bytes whose CID is {got}")


def _restore_database(archive: BackupArchive, database: dict[str, Any], revision: str, url: str,
                      sqlite_target: Path | None, data_dir: Path, staging: Path, force: bool) -> Path | None:
    """SQLite target: the database file, staged (returned). PostgreSQL: loaded and committed here (None)."""
    member = str(database["member"])
    source = staging / ".restore-source"
    if sqlite_target is not None:
        staged = staging / (sqlite_target.relative_to(data_dir) if sqlite_target.is_relative_to(data_dir)
                            else Path(".restored.sqlite3"))
        staged.parent.mkdir(parents=True, exist_ok=True)
        if database["kind"] == "sqlite":
            archive.extract_to(member, staged)  # the snapshot as it was; create_schema upgrades it if older
            return staged
        archive.extract_to(member, source)
        _load(make_engine(f"sqlite:///{staged}"), database, source, revision, force=False)
        source.unlink()
        return staged
    archive.extract_to(member, source)
    _load(make_engine(url), database, source, revision, force=force)
    source.unlink()
    return None


def _load(engine: Engine, database: dict[str, Any], source: Path, revision: str, *, force: bool) -> None:
    try:
        with schema_lock(engine) as conn:
            busy = db_backup.occupied_tables(conn)
            if busy and not force:
                raise RestoreTargetError(f"the database already holds data (tables {', '.join(busy)})")
            db_backup.drop_our_tables(conn)
            build_schema(conn, revision)
            if database["kind"] == "sqlite":
                counts = db_backup.load_rows(conn, db_backup.read_rows_sqlite(source))
            else:
                with source.open("rb") as fh:
                    counts = db_backup.load_rows(conn, db_backup.read_rows_file(fh))
            expected = database.get("tables")
            if isinstance(expected, dict) and {k: v for k, v in counts.items()} != expected:
                raise BackupArchiveError(f"the database dump loaded {counts} rows, the manifest lists {expected}")
            upgrade_connection(conn)
    finally:
        engine.dispose()


def _swap_into_place(staging: Path, data_dir: Path, staged_db: Path | None, sqlite_target: Path | None,
                     force: bool) -> list[str]:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    moved: list[str] = []
    outside = staged_db is not None and sqlite_target is not None and not sqlite_target.is_relative_to(data_dir)
    if outside:
        assert sqlite_target is not None and staged_db is not None
        if sqlite_target.exists():
            aside = sqlite_target.with_name(f"{sqlite_target.name}.replaced-{stamp}")
            sqlite_target.rename(aside)
            moved.append(str(aside))
        sqlite_target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged_db, sqlite_target)
    if data_dir.exists():
        if data_dir.is_dir() and not any(data_dir.iterdir()):
            data_dir.rmdir()
        elif force:
            aside = data_dir.with_name(f"{data_dir.name}.replaced-{stamp}")
            data_dir.rename(aside)
            moved.append(str(aside))
        else:  # filled since the check: never write into it
            raise RestoreTargetError(f"the data directory {data_dir} is no longer empty")
    os.rename(staging, data_dir)
    return moved


def _finish(settings: Settings, data_dir: Path, pins: list[str]) -> dict[str, Any]:
    """Open the restored database (upgrading it to the head if it is older), build the index files from the
    catalog, pin (IPFS) or find (local) every block the database refers to."""
    from provenance.index.service import HashIndex

    engine = make_engine(settings.resolved_database_url)
    try:
        create_schema(engine)
        with reader(engine).connect() as conn:
            summary = ledger_summary(conn)
        channels = HashIndex(data_dir, engine, preload=False).rebuild()  # builds and writes every channel
    finally:
        engine.dispose()
    missing: list[str] = []
    store = make_blockstore(settings)
    try:
        for cid in pins:
            if not store.has(cid):
                missing.append(cid)
            elif isinstance(store, IpfsRpcBlockStore) and not store.is_pinned(cid):
                store.pin(cid)
    finally:
        store.close()
    warnings = []
    if missing:
        warnings.append(f"{len(missing)} of {len(pins)} blocks the database refers to are not in the block store "
                        f"({store.describe()}): import them (ipfs dag import of a CAR from provenance export-car, "
                        "or a backup made with --include-blocks), then run provenance audit")
    return {"ledger": summary, "index": channels, "missing_cids": missing, "pins": len(pins), "warnings": warnings,
            "mismatch": False}


def _setting_warnings(manifest: dict[str, Any], settings: Settings) -> list[str]:
    made = manifest.get("settings") or {}
    out = []
    for key in ("log_origin", "log_key_name"):
        if key in made and made[key] != getattr(settings, key):
            out.append(f"the backup was made with PROVENANCE_{key.upper()}={made[key]!r}, this configuration has "
                       f"{getattr(settings, key)!r}: set it back, or audit will not verify the checkpoints")
    return out
