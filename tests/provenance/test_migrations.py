"""Schema migrations (issue 16): revision 0001 is main's schema at 84261ec, the head is today's models, and a
database of 0001 with data in it upgrades, on SQLite and PostgreSQL, keeping every row and gaining usable tables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from provenance.audit import audit_ledger
from provenance.config import Settings
from provenance.db import create_schema, import_table_modules, make_engine, metadata
from provenance.errors import SchemaVersionError
from provenance.migrations import BASELINE_TABLES, current_state, head_revision, upgrade
from provenance.migrations.runner import MIGRATIONS_DIR, alembic_config
from provenance.records import PerceptualHash, PublisherMetadata
from provenance.services import open_ledger
from tests.fixtures.services import ROOT
from tests.provenance.legacy_db import baseline_rows, build_legacy_database, png

BIN = Path(sys.executable).parent / "provenance"
BASELINE_COMMIT = "84261ec"
NEW_TABLES = {"key_events", "used_statements", "staged_statements", "witness_sizes", "ingest_tasks",
              "lookup_receipts"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_schema_url")


def model_diffs(conn: Connection) -> list[object]:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    import_table_modules()
    ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
    return list(compare_metadata(ctx, metadata))


def run_cli(data_dir: Path, *args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
    env["PROVENANCE_DATABASE_URL"] = url
    return subprocess.run([str(BIN), "--data-dir", str(data_dir), *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_head_is_alembics_head_and_the_history_is_one_line() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [head_revision()]
    chain = [(s.revision, s.down_revision) for s in script.walk_revisions()]
    numbers = [f"{n:04d}" for n in range(int(head_revision()), 0, -1)]
    assert chain == [(n, f"{int(n) - 1:04d}" if n != "0001" else None) for n in numbers]


def test_models_and_the_head_revision_agree(db_url: str) -> None:
    """Migrations run from an empty database give exactly the tables the models define; at 0001 they do not (the
    comparison can fail), and 0002's downgrade returns to 0001's schema."""
    from alembic import command

    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(connection=conn), "0001")
            at_baseline = model_diffs(conn)
            command.upgrade(alembic_config(connection=conn), "head")
            assert model_diffs(conn) == []
            assert conn.execute(text("SELECT id, size FROM log_state")).all() == [(1, 0)]
            command.downgrade(alembic_config(connection=conn), "0001")
            assert [str(d) for d in model_diffs(conn)] == [str(d) for d in at_baseline]
        added = {d[1].name for d in at_baseline if isinstance(d, tuple) and d[0] == "add_table"}
        assert added == NEW_TABLES
        assert ("add_index", "ix_records_image_sha256") in {(d[0], d[1].name) for d in at_baseline
                                                             if isinstance(d, tuple) and d[0] == "add_index"}
    finally:
        engine.dispose()


def _shape(conn: Connection) -> dict[str, object]:
    """Every table's columns, keys, constraints and indexes, as the database reports them (plus SQLite's DDL)."""
    insp = inspect(conn)
    shape: dict[str, object] = {}
    for t in sorted(set(insp.get_table_names()) - {"alembic_version"}):
        shape[t] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"], str(c.get("default"))) for c in insp.get_columns(t)],
            "pk": insp.get_pk_constraint(t)["constrained_columns"],
            "fks": sorted((tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                          for f in insp.get_foreign_keys(t)),
            "unique": sorted((u["name"] or "", tuple(u["column_names"])) for u in insp.get_unique_constraints(t)),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(t)),
            "checks": sorted((c["name"] or "", c["sqltext"]) for c in insp.get_check_constraints(t)),
        }
    if conn.dialect.name == "sqlite":
        shape["sqlite_master"] = sorted(conn.execute(text(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT IN ('alembic_version') "
            "AND name NOT LIKE 'sqlite_autoindex_alembic%'")).all())
    shape["rows:log_state"] = conn.execute(text("SELECT id, size FROM log_state")).all()
    return shape


def test_revision_0001_is_the_schema_of_84261ec(db_url: str, tmp_path: Path) -> None:
    """84261ec's own code makes its schema (in a subprocess, from ``git archive``); migration 0001 must make the
    same one, down to SQLite's DDL text."""
    from alembic import command

    probe = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{BASELINE_COMMIT}^{{commit}}"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"commit {BASELINE_COMMIT} is not in this checkout (shallow clone?)")
    old = tmp_path / "old"
    old.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASELINE_COMMIT, "provenance"], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    old_url = f"sqlite:///{tmp_path / 'old.db'}" if db_url.startswith("sqlite") else db_url
    env = {**os.environ, "PYTHONPATH": str(old)}
    made = subprocess.run([sys.executable, "-c", "import sys, provenance.db as d; assert d.__file__.startswith("
                           "sys.argv[2]); d.create_schema(d.make_engine(sys.argv[1]))", old_url, str(old)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert made.returncode == 0, made.stderr
    old_engine = make_engine(old_url)
    try:
        with old_engine.begin() as conn:
            old_shape = _shape(conn)
            if old_url == db_url:  # PostgreSQL: one schema, emptied for the migration
                for table in sorted(old_shape, reverse=True):
                    if table in BASELINE_TABLES:
                        conn.execute(text(f'DROP TABLE "{table}" CASCADE'))
    finally:
        old_engine.dispose()
    assert set(old_shape) - {"sqlite_master", "rows:log_state"} == BASELINE_TABLES
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(connection=conn), "0001")
            assert _shape(conn) == old_shape
    finally:
        engine.dispose()


def test_a_0001_database_with_data_upgrades_and_keeps_it(db_url: str, tmp_path: Path) -> None:
    """The operator's path: ``db current`` recognises the unversioned 0001 database, ``db upgrade`` brings it to
    the head; every row is intact, the models agree, a Ledger audits the old records and writes key events, records
    and checkpoints into the new tables."""
    data_dir = tmp_path / "data"
    legacy = build_legacy_database(db_url, data_dir)
    engine = make_engine(db_url)
    try:
        before = baseline_rows(engine)
        assert len(before["records"]) == 4 and len(before["index_entries"]) == 4
        assert len(before["checkpoints"]) == 2 and before["log_state"] == [(1, 4)]

        shown = run_cli(data_dir, "db", "current", url=db_url)
        assert shown.returncode == 0, shown.stderr
        assert "revision: 0001 (unversioned, recognised by its tables): behind the head" in shown.stdout
        upgraded = run_cli(data_dir, "db", "upgrade", url=db_url)
        assert upgraded.returncode == 0, upgraded.stderr
        assert f"upgraded from revision 0001 to {head_revision()}" in upgraded.stdout
        assert current_state(engine).revision == head_revision()
        assert baseline_rows(engine) == before
        with engine.connect() as conn:
            assert model_diffs(conn) == []
            assert NEW_TABLES <= set(inspect(conn).get_table_names())
        assert upgrade(engine) == (head_revision(), head_revision())  # again: nothing to do
    finally:
        engine.dispose()

    ledger = open_ledger(Settings(data_dir=data_dir, database_url=db_url))
    try:
        from provenance.api.keys import authenticate

        assert authenticate(ledger.engine, legacy.api_key) == "acme"
        report = audit_ledger(ledger, log_public_key=ledger.log_public_key(), anchor=None)
        assert report.ok, report.summary()
        assert (report.records_verified, report.checkpoints, report.log_size) == (4, 2, 4)
        assert {w.check for w in report.warnings} >= {"keyevent.legacy"}
        # the new tables in use: a legacy publisher's key rotation (a key event) and a record signed with the new
        # key, a new publisher (its registration event) and its attested record
        hashes = (PerceptualHash("phash", "phash-v1", 64, "ff" * 8),)
        ledger.rotate_custodial_key("acme")
        rotated = ledger.ingest(png(8), publisher="acme", metadata=PublisherMetadata(title="after"), hashes=hashes)
        ledger.add_publisher("gamma")
        new = ledger.ingest(png(9), publisher="gamma", metadata=PublisherMetadata(title="new"), hashes=hashes)
        cp = ledger.checkpoint()
        assert (rotated.leaf_index, new.leaf_index, cp.tree_size) == (5, 7, 8)
        with ledger.reader.connect() as conn:
            kinds = [k for (k,) in conn.execute(text("SELECT kind FROM key_events ORDER BY leaf_index"))]
            used = conn.execute(text("SELECT count(*) FROM used_statements")).scalar()
        assert kinds == ["key-rotation", "key-registration"] and used == 2
        report = audit_ledger(ledger, log_public_key=ledger.log_public_key(), anchor=None)
        assert report.ok, report.summary()
        assert (report.records_verified, report.key_events, report.checkpoints) == (6, 2, 3)
        assert report.publishers["acme"] == {"custody": "service", "keys": 2}
    finally:
        ledger.close()


def test_opening_a_0001_database_upgrades_it(tmp_path: Path, sqlite_url: str) -> None:
    """No command needed: ``create_schema`` (every open) upgrades an older database, keeping its rows."""
    legacy = build_legacy_database(sqlite_url, tmp_path / "data")
    engine = make_engine(sqlite_url)
    try:
        before = baseline_rows(engine)
        create_schema(engine)
        assert current_state(engine).revision == head_revision()
        assert baseline_rows(engine) == before
        create_schema(engine)  # at the head: nothing to do
        assert baseline_rows(engine) == before
    finally:
        engine.dispose()
    assert legacy.checkpoint_sizes == [2, 4]


def test_a_database_of_the_development_code_between_0001_and_0002_upgrades(sqlite_url: str) -> None:
    """Made by ``create_all`` of code that had some of 0002's tables and no Alembic: 0002 creates only what is
    missing, and the result equals the models."""
    from alembic import command

    from provenance.keyevents_store import key_events

    engine = make_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(connection=conn), "0001")
            conn.execute(text("DROP TABLE alembic_version"))
            key_events.create(conn)
        create_schema(engine)
        with engine.connect() as conn:
            assert model_diffs(conn) == []
        assert current_state(engine).revision == head_revision()
    finally:
        engine.dispose()


def _stamp(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


def test_a_database_it_cannot_place_is_refused_and_left_alone(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        create_schema(engine)
        _stamp(engine, "9999")  # as a newer version would leave it
        with pytest.raises(SchemaVersionError, match="revision 9999, which this version of provenance does not know"):
            create_schema(engine)
        assert current_state(engine).revision == "9999"
        assert "unknown to this version" in current_state(engine).describe()
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE alembic_version"))
            conn.execute(text("DROP TABLE api_keys"))
        with pytest.raises(SchemaVersionError, match=r"not all of the baseline's \(missing: api_keys\)"):
            create_schema(engine)
        with engine.connect() as conn:
            assert "api_keys" not in inspect(conn).get_table_names()
    finally:
        engine.dispose()


def test_upgrade_sql_is_the_script_from_the_current_revision(tmp_path: Path) -> None:
    """``db upgrade --sql`` prints the DDL for a DBA and runs nothing."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    build_legacy_database(url, tmp_path / "data")
    out = run_cli(tmp_path / "data", "db", "upgrade", "--sql", url=url)
    assert out.returncode == 0, out.stderr
    assert "CREATE TABLE key_events" in out.stdout and "CREATE TABLE publishers" in out.stdout
    assert "CREATE INDEX ix_records_image_sha256 ON records (image_sha256)" in out.stdout
    engine = make_engine(url)
    try:
        assert current_state(engine).revision is None  # nothing ran
    finally:
        engine.dispose()
    assert MIGRATIONS_DIR.joinpath("versions", "0001_baseline.py").is_file()
