"""SQLAlchemy plumbing shared by the SQL-backed stores: one ``MetaData``, engine creation, schema creation.

Table definitions live beside the code that owns them (``provenance/records_store.py``,
``provenance/translog/sql.py`` ...) but all register on :data:`metadata`, so ``create_schema`` makes everything.
SQLite is the embedded default; PostgreSQL is the served one. The same tests run on both.
"""

from __future__ import annotations

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine

metadata = MetaData()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None  # pysqlite must not emit its own BEGIN; ours follows
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            # Writers take the write lock up front (IMMEDIATE) so two appenders never race for the same log index;
            # connections from ``reader(engine)`` begin DEFERRED and, under WAL, never block or wait for writers.
            mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    return create_engine(url, pool_pre_ping=True)


def reader(engine: Engine) -> Engine:
    """The same engine for read-only work: on SQLite its transactions begin DEFERRED and so hold no write lock."""
    return engine.execution_options(sqlite_begin="DEFERRED")


def import_table_modules() -> None:
    """Import every module that defines tables, so that they all register on ``metadata``."""
    import provenance.api.keys  # noqa: F401
    import provenance.index.catalog  # noqa: F401
    import provenance.ingest_tasks_store  # noqa: F401
    import provenance.keyevents_store  # noqa: F401
    import provenance.receipts_store  # noqa: F401
    import provenance.records_store  # noqa: F401
    import provenance.translog.sql  # noqa: F401


def create_schema(engine: Engine) -> None:
    """Bring the database to the schema this code expects: a fresh one is created (``create_all``) and stamped at
    the head migration; an older one (an ``alembic_version`` behind the head, or the baseline tables of a database
    made before migrations) is upgraded with Alembic; one at the head is left alone. See provenance/migrations/."""
    from provenance.migrations import ensure_schema

    ensure_schema(engine)
