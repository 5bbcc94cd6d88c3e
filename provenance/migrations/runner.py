"""Bring a database to the schema this code expects: create it, recognise it, or upgrade it with Alembic.

``ensure_schema`` (what ``provenance.db.create_schema`` calls at every open) decides by what it finds:

- at the head revision: nothing to do (two cheap reads; Alembic is not even imported);
- no table of ours: ``metadata.create_all`` then stamp the head (a fresh database never replays history);
- an ``alembic_version`` behind the head: ``alembic upgrade head``;
- no ``alembic_version`` but the baseline tables (a database made before migrations existed): stamp 0001, upgrade.

Anything else (a revision this code does not know, i.e. made by a newer version; some of our tables but not the
baseline's) is refused with :class:`SchemaVersionError`, before anything is written. The work runs in one
transaction under a lock (PostgreSQL: an advisory lock per schema; SQLite: the write lock taken at BEGIN), so an API
and its workers starting together upgrade once.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from provenance.db import import_table_modules, metadata, reader
from provenance.errors import SchemaVersionError
from provenance.logging import get_logger

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["BASELINE_REVISION", "BASELINE_TABLES", "SchemaState", "alembic_config", "build_schema", "current_state",
           "ensure_schema", "head_revision", "schema_lock", "schema_state", "upgrade", "upgrade_connection",
           "upgrade_sql"]

log = get_logger(__name__)
# Alembic narrates each step (and its plugins) at INFO; our own log lines (schema.created / .upgraded) say what
# happened.
logging.getLogger("alembic").setLevel(logging.WARNING)

MIGRATIONS_DIR = Path(__file__).resolve().parent
VERSIONS_DIR = MIGRATIONS_DIR / "versions"
VERSION_TABLE = "alembic_version"
BASELINE_REVISION = "0001"
# The tables of the baseline (main at 84261ec): a database that has them all and no alembic_version is at 0001.
BASELINE_TABLES = frozenset({
    "publishers", "publisher_keys", "records", "checkpoints", "local_features", "chain_deployments",
    "index_entries", "log_leaves", "log_nodes", "log_state", "api_keys",
})
# Revision files are named NNNN_what.py with revision id "NNNN", one after another (no branches), so the head is
# the highest number. A test checks this against Alembic's own reading of the directory.
_REVISION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.py$")


@lru_cache(maxsize=1)
def head_revision() -> str:
    numbers = [m.group(1) for p in VERSIONS_DIR.iterdir() if (m := _REVISION_FILE.match(p.name))]
    if not numbers:
        raise SchemaVersionError(f"no migration revisions found in {VERSIONS_DIR}")
    return max(numbers)


@dataclass(frozen=True)
class SchemaState:
    """What a database holds: its recorded revision (None: no ``alembic_version``) and which of our tables."""

    revision: str | None
    tables: frozenset[str]

    @property
    def fresh(self) -> bool:
        return self.revision is None and not self.tables

    @property
    def effective_revision(self) -> str | None:
        """The recorded revision; 0001 for an unversioned database with the baseline tables; None when fresh."""
        if self.revision is not None:
            return self.revision
        if BASELINE_TABLES <= self.tables:
            return BASELINE_REVISION
        return None

    def describe(self) -> str:
        head = head_revision()
        if self.fresh:
            return f"empty database (no provenance tables): the next open creates the schema at {head}"
        rev = self.effective_revision
        if rev is None:
            return f"unknown: some provenance tables ({', '.join(sorted(self.tables))}) but no revision"
        note = "" if self.revision is not None else " (unversioned, recognised by its tables)"
        if rev == head:
            return f"{rev} (head){note}"
        if _known(rev):
            return f"{rev}{note}: behind the head {head} (run provenance db upgrade)"
        return f"{rev}{note}: unknown to this version of provenance (head {head}): made by a newer version?"


def schema_state(conn: Connection) -> SchemaState:
    import_table_modules()
    names = set(inspect(conn).get_table_names())
    revision = None
    if VERSION_TABLE in names:
        rows = [r[0] for r in conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))]
        if len(rows) > 1:
            raise SchemaVersionError(f"the database records several revisions ({', '.join(rows)}): the migration "
                                     "history has branches, which provenance does not make")
        revision = rows[0] if rows else None
    return SchemaState(revision, frozenset(names & set(metadata.tables)))


def current_state(engine: Engine) -> SchemaState:
    with reader(engine).connect() as conn:
        return schema_state(conn)


def ensure_schema(engine: Engine) -> None:
    """Create, recognise or upgrade the schema to the head revision (see the module docstring)."""
    head = head_revision()
    if current_state(engine).revision == head:
        return
    with schema_lock(engine) as conn:
        state = schema_state(conn)  # again, under the lock: another process may have done it meanwhile
        if state.revision == head:
            return
        if state.fresh:
            metadata.create_all(conn)
            _alembic_stamp(conn, "head")
            log.info("schema.created", revision=head)
            return
        _upgrade_locked(conn, state, "head")


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """``provenance db upgrade``: the revisions before and after. A fresh database is created at the head."""
    with schema_lock(engine) as conn:
        state = schema_state(conn)
        if state.fresh and revision == "head":
            metadata.create_all(conn)
            _alembic_stamp(conn, "head")
            log.info("schema.created", revision=head_revision())
            return None, head_revision()
        before = state.effective_revision
        _upgrade_locked(conn, state, revision)
        return before, schema_state(conn).revision or ""


def build_schema(conn: Connection, revision: str) -> None:
    """Create our tables at ``revision`` in a database that has none (restore loads rows into them, then upgrades
    with :func:`upgrade_connection`). The caller holds :func:`schema_lock`."""
    if revision == head_revision():
        metadata.create_all(conn)
        _alembic_stamp(conn, "head")
        return
    if not _known(revision):
        raise SchemaVersionError(f"revision {revision} is unknown to this version of provenance (head "
                                 f"{head_revision()}): it was made by a newer version")
    from alembic import command

    command.upgrade(alembic_config(connection=conn), revision)


def upgrade_connection(conn: Connection) -> None:
    """Upgrade to the head on a connection that holds :func:`schema_lock`."""
    state = schema_state(conn)
    if state.revision != head_revision():
        _upgrade_locked(conn, state, "head")


def upgrade_sql(url: str, revision: str = "head", *, from_revision: str | None = None) -> str:
    """The SQL an upgrade would run (Alembic's offline mode), for a DBA to review or apply by hand."""
    from alembic import command

    buf = io.StringIO()
    cfg = alembic_config(url=url, output=buf)
    command.upgrade(cfg, f"{from_revision}:{revision}" if from_revision else revision, sql=True)
    return buf.getvalue()


def alembic_config(*, connection: Connection | None = None, url: str | None = None,
                   output: io.StringIO | None = None) -> Config:
    """An Alembic ``Config`` for our migrations, without any ``alembic.ini``."""
    from alembic.config import Config

    cfg = Config(output_buffer=output) if output is not None else Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _known(revision: str) -> bool:
    return any((m := _REVISION_FILE.match(p.name)) and m.group(1) == revision for p in VERSIONS_DIR.iterdir())


def _upgrade_locked(conn: Connection, state: SchemaState, revision: str) -> None:
    from alembic import command

    current = state.effective_revision
    if current is None:
        missing = ", ".join(sorted(BASELINE_TABLES - state.tables))
        raise SchemaVersionError(
            f"the database has some provenance tables ({', '.join(sorted(state.tables))}) but not all of the "
            f"baseline's (missing: {missing}) and no {VERSION_TABLE} table: its revision cannot be told. Use an "
            "empty database, or restore a backup (provenance restore)")
    if not _known(current):
        raise SchemaVersionError(
            f"the database is at revision {current}, which this version of provenance does not know (its head is "
            f"{head_revision()}): it was made or upgraded by a newer version; run that version")
    if state.revision is None:
        _alembic_stamp(conn, current)
        log.info("schema.recognised", revision=current, how="baseline tables without alembic_version")
    command.upgrade(alembic_config(connection=conn), revision)
    log.info("schema.upgraded", from_revision=current, to_revision=revision if revision != "head" else
             head_revision())


def _alembic_stamp(conn: Connection, revision: str) -> None:
    from alembic import command

    command.stamp(alembic_config(connection=conn), revision)


@contextmanager
def schema_lock(engine: Engine) -> Iterator[Connection]:
    """One transaction in which to change the schema, held by one process at a time."""
    with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE (provenance.db.make_engine) takes the write lock now
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('provenance.schema:' || current_schema()))"))
        yield conn
