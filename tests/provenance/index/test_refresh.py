"""Two processes share one catalog (an ingest worker adds, the API searches): each HashIndex must see the other's
adds on its next search, and never return what the other withdrew. Two instances on one database stand in for the
two processes (each has its own faiss indexes in memory), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from provenance.index import HashIndex
from provenance.index.errors import EmptyIndexError


def test_a_second_instance_sees_adds_and_withdrawals_of_the_first(tmp_path: Path, sql_engine: Engine) -> None:
    api = HashIndex(tmp_path / "api", sql_engine)
    worker = HashIndex(tmp_path / "worker", sql_engine)
    with pytest.raises(EmptyIndexError):
        api.search("phash", "00" * 8)
    worker.add("phash", "bafy-a", "acme", "ff" * 8)
    assert api.search("phash", "ff" * 8, k=5) == [("bafy-a", 0)]
    worker.add("phash", "bafy-b", "acme", "0f" * 8)
    assert [m.record_cid for m in api.search("phash", "0f" * 8, k=5)] == ["bafy-b", "bafy-a"]
    worker.withdraw("bafy-b", "acme")
    assert [m.record_cid for m in api.search("phash", "0f" * 8, k=5)] == ["bafy-a"]
    api.close()
    reopened = HashIndex(tmp_path / "api", sql_engine)
    assert [m.record_cid for m in reopened.search("phash", "ff" * 8, k=5)] == ["bafy-a"]
