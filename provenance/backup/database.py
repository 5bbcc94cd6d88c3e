"""The database in a backup, and back.

SQLite (the embedded default): the online backup API (``sqlite3.Connection.backup``) copies a consistent snapshot
page by page while the service keeps running; the archive holds that file, and a restore onto SQLite puts it back as
it was.

PostgreSQL: a logical dump of our tables through SQLAlchemy, in one REPEATABLE READ, READ ONLY transaction (one
snapshot of every table): gzip'd JSON lines, per table a header (name, columns, how each value is encoded) then one
array per row, in primary-key order. Why not ``pg_dump``: its major version must match the server's, it is not
installed beside every service, and its output restores only into PostgreSQL; this dump needs nothing but the
driver, restores into either database (a SQLite backup restores into PostgreSQL the same way, read from the file)
and is verified like every other member. ``pg_dump`` of the schema stays the right tool for a DBA's own
full-server backups (docs/backup.md).

Restore builds our schema at the archive's revision, loads the rows, resets sequences, then upgrades to the head,
all in one transaction.
"""

from __future__ import annotations

import base64
import gzip
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from sqlalchemy import DateTime, LargeBinary, MetaData, Table, func, inspect, select, text
from sqlalchemy.engine import Connection, Engine, make_url

from provenance.db import import_table_modules, metadata
from provenance.errors import BackupArchiveError, BackupError

__all__ = ["ROWS_MEMBER", "SQLITE_MEMBER", "RowBatch", "dump_rows", "drop_our_tables", "load_rows",
           "occupied_tables", "our_tables", "read_rows_file", "read_rows_sqlite", "snapshot_sqlite", "sqlite_file"]

SQLITE_MEMBER = "database/ledger.sqlite3"
ROWS_MEMBER = "database/rows.jsonl.gz"
_BATCH = 500


@dataclass(frozen=True)
class RowBatch:
    table: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]  # decoded Python values; an empty list announces a table with no rows


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None: not SQLite, or in memory)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database).resolve()


def snapshot_sqlite(engine: Engine, dest: Path) -> None:
    """A consistent copy of the live SQLite database at ``dest`` (the online backup API, all pages in one step)."""
    raw = engine.raw_connection()
    try:
        src = raw.driver_connection
        assert isinstance(src, sqlite3.Connection)
        out = sqlite3.connect(dest)
        try:
            src.backup(out)
        finally:
            out.close()
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite online backup to {dest} failed: {exc}") from exc
    finally:
        raw.close()


def our_tables(conn: Connection) -> list[Table]:
    """Our tables present in this database, reflected as they are (any revision), parents before children."""
    import_table_modules()
    present = set(inspect(conn).get_table_names()) & set(metadata.tables)
    reflected = MetaData()
    reflected.reflect(conn, only=sorted(present))
    return list(reflected.sorted_tables)


def occupied_tables(conn: Connection) -> list[str]:
    """Our tables that hold data (``log_state`` counts only once the log has leaves)."""
    busy = []
    for table in our_tables(conn):
        stmt = select(func.count()).select_from(table)
        if table.name == "log_state":
            stmt = stmt.where(table.c.size > 0)
        if conn.execute(stmt).scalar():
            busy.append(table.name)
    return busy


def drop_our_tables(conn: Connection) -> None:
    """``restore --force`` onto a database that holds data: our tables and the migration stamp go."""
    tables = our_tables(conn)
    if tables:
        tables[0].metadata.drop_all(conn)  # the reflected MetaData: children before parents
    conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


def _kind(table: Table, column: str) -> str:
    ctype = table.c[column].type
    if isinstance(ctype, LargeBinary):
        return "bytes"
    if isinstance(ctype, DateTime):
        return "datetime"
    return "plain"


def _encode(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "bytes":
        return base64.b64encode(bytes(value)).decode("ascii")
    if kind == "datetime":
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()  # we write only UTC
    return value


def _decode(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "bytes":
        return base64.b64decode(value, validate=True)
    if kind == "datetime":
        return datetime.fromisoformat(value)
    return value


def dump_rows(conn: Connection, out: Path) -> dict[str, int]:
    """Every row of our tables (as they are: any revision) to ``out`` (gzip'd JSON lines); row counts per table.
    The caller's transaction is the snapshot."""
    counts: dict[str, int] = {}
    with gzip.open(out, "wt", encoding="utf-8", compresslevel=6) as fh:
        for table in our_tables(conn):
            columns = [c.name for c in table.columns]
            kinds = [_kind(table, c) for c in columns]
            fh.write(json.dumps({"table": table.name, "columns": columns, "kinds": kinds}) + "\n")
            stmt = select(table).order_by(*table.primary_key.columns)
            n = 0
            for row in conn.execution_options(yield_per=1000).execute(stmt):
                fh.write(json.dumps([_encode(v, k) for v, k in zip(row, kinds)], separators=(",", ":")) + "\n")
                n += 1
            counts[table.name] = n
    return counts


def read_rows_file(fh: IO[bytes]) -> Iterator[RowBatch]:
    """The batches of a dump written by :func:`dump_rows` (``fh``: the gzip'd member, as bytes)."""
    table: str | None = None
    columns: tuple[str, ...] = ()
    kinds: list[str] = []
    batch: list[tuple[Any, ...]] = []
    try:
        for line in gzip.open(fh, "rt", encoding="utf-8"):
            obj = json.loads(line)
            if isinstance(obj, dict):
                if table is not None:
                    yield RowBatch(table, columns, batch)
                table, columns, kinds, batch = str(obj["table"]), tuple(obj["columns"]), list(obj["kinds"]), []
                continue
            if table is None or not isinstance(obj, list) or len(obj) != len(columns):
                raise BackupArchiveError("the database dump is malformed: a row outside a table, or of the wrong "
                                         "width")
            batch.append(tuple(_decode(v, k) for v, k in zip(obj, kinds)))
            if len(batch) >= _BATCH:
                yield RowBatch(table, columns, batch)
                batch = []
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise BackupArchiveError(f"the database dump is malformed: {exc}") from exc
    if table is not None:
        yield RowBatch(table, columns, batch)


def read_rows_sqlite(path: Path) -> Iterator[RowBatch]:
    """The batches of a SQLite database file (a SQLite backup restored into PostgreSQL, or vice versa)."""
    from provenance.db import make_engine, reader

    engine = make_engine(f"sqlite:///{path}")
    try:
        with reader(engine).connect() as conn:
            for table in our_tables(conn):
                columns = tuple(c.name for c in table.columns)
                yield RowBatch(table.name, columns, [])
                result = conn.execution_options(yield_per=_BATCH).execute(
                    select(table).order_by(*table.primary_key.columns))
                for part in result.partitions(_BATCH):
                    yield RowBatch(table.name, columns, [tuple(r) for r in part])
    finally:
        engine.dispose()


def load_rows(conn: Connection, batches: Iterable[RowBatch]) -> dict[str, int]:
    """Insert the batches into our tables as this database has them now (just built at the archive's revision; any
    row a table was created with, such as the log's state row, is replaced). Row counts per table."""
    target = {t.name: t for t in our_tables(conn)}
    counts: dict[str, int] = {}
    for batch in batches:
        table = target.get(batch.table)
        if table is None:
            raise BackupArchiveError(f"the dump has table {batch.table!r}, which the schema at its revision lacks")
        unknown = set(batch.columns) - set(table.c.keys())
        if unknown:
            raise BackupArchiveError(f"the dump has columns {sorted(unknown)} in {batch.table}, which the schema "
                                     "at its revision lacks")
        if batch.table not in counts:
            conn.execute(table.delete())
            counts[batch.table] = 0
        if batch.rows:
            conn.execute(table.insert(), [dict(zip(batch.columns, row)) for row in batch.rows])
            counts[batch.table] += len(batch.rows)
    if conn.dialect.name == "postgresql":
        _reset_sequences(conn, list(target.values()))
    return counts


def _reset_sequences(conn: Connection, tables: list[Table]) -> None:
    """Rows came in with their ids: move each serial sequence past the largest, as the source had it."""
    for table in tables:
        for column in table.primary_key.columns:
            seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                               {"t": table.name, "c": column.name}).scalar()
            if seq:
                top = conn.execute(select(func.max(column))).scalar()
                conn.execute(text("SELECT setval(CAST(:s AS regclass), :v, :called)"),
                             {"s": seq, "v": top or 1, "called": top is not None})
