"""SQLite locking: writers serialise at BEGIN; readers neither hold nor wait for the write lock."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text

from provenance.db import create_schema, make_engine, reader


def test_open_reader_does_not_block_a_writer(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    create_schema(engine)
    with reader(engine).connect() as rconn:
        rconn.execute(text("SELECT count(*) FROM log_leaves")).scalar_one()  # a read transaction is now open
        t0 = time.perf_counter()
        with engine.begin() as wconn:
            wconn.execute(text("INSERT INTO publishers (id, created_at) VALUES ('p', CURRENT_TIMESTAMP)"))
        assert time.perf_counter() - t0 < 5
    engine.dispose()


def test_writers_are_serialised_at_begin(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'y.db'}")
    create_schema(engine)
    order: list[str] = []
    first_in = threading.Event()

    def first() -> None:
        with engine.begin() as conn:
            conn.execute(text("SELECT 1"))
            first_in.set()
            time.sleep(0.5)
            order.append("first-commit")

    t = threading.Thread(target=first)
    t.start()
    first_in.wait(5)
    with engine.begin() as conn:  # must wait at BEGIN IMMEDIATE until the first writer commits
        order.append("second-begin")
    t.join()
    assert order == ["first-commit", "second-begin"]
    engine.dispose()
