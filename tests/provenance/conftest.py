"""Ledger fixtures: a fresh ledger in a temp data dir, on the embedded defaults unless a test asks otherwise."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from provenance.config import Settings
from provenance.ledger import Ledger
from provenance.services import open_ledger


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_db_url(request: pytest.FixtureRequest) -> str | None:
    """Every ledger test runs on the embedded SQLite default and on PostgreSQL."""
    if request.param == "sqlite":
        return None  # the default: a SQLite file in the data directory
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture
def make_ledger(tmp_path: Path, ledger_db_url: str | None) -> Iterator[Callable[..., Ledger]]:
    opened: list[Ledger] = []

    def _make(data_dir: Path | None = None, **overrides) -> Ledger:  # type: ignore[no-untyped-def]
        overrides.setdefault("database_url", ledger_db_url)
        settings = Settings(data_dir=data_dir or tmp_path / "data", **overrides)
        ledger = open_ledger(settings)
        opened.append(ledger)
        return ledger

    yield _make
    for ledger in opened:
        ledger.close()


@pytest.fixture
def ledger(make_ledger) -> Ledger:  # type: ignore[no-untyped-def]
    led = make_ledger()
    led.add_publisher("acme")
    return led


@pytest.fixture
def photo_bytes(shared_photos) -> list[bytes]:  # type: ignore[no-untyped-def]
    names = ["kodim01.png", "kodim02.png", "kodim03.png"]
    return [(shared_photos / "kodak24" / n).read_bytes() for n in names]
