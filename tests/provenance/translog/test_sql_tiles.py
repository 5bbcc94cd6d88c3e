"""The SQL log's range reads behind tiles (perfect_hash_run, record_cid_run), on SQLite and PostgreSQL, against the
in-memory log; a missing stored node is reported as corruption, never served as a short tile."""

from __future__ import annotations

import pytest
from sqlalchemy import delete
from sqlalchemy.engine import Engine

from provenance.errors import IndexOutOfRangeError, LogError
from provenance.translog.sql import SqlTransparencyLog, log_nodes
from provenance.translog.tree import MemoryMerkleLog

LOG = SqlTransparencyLog()
N = 600


def _cids(n: int) -> list[str]:
    return [f"bafkreitile{i:06d}" for i in range(n)]


def test_runs_match_the_memory_log(sql_engine: Engine) -> None:
    cids = _cids(N)
    mem = MemoryMerkleLog(c.encode() for c in cids)
    with sql_engine.begin() as conn:
        LOG.append_many(conn, cids)
    with sql_engine.connect() as conn:
        assert LOG.perfect_hash_run(conn, 0, 256, 512) == [mem.perfect_hash(0, i) for i in range(256, 512)]
        assert LOG.perfect_hash_run(conn, 8, 0, 2) == [mem.perfect_hash(8, 0), mem.perfect_hash(8, 1)]
        assert LOG.perfect_hash_run(conn, 3, 70, 75) == [mem.perfect_hash(3, i) for i in range(70, 75)]
        assert LOG.perfect_hash_run(conn, 0, 5, 5) == []
        assert LOG.record_cid_run(conn, 512, N) == cids[512:]
        with pytest.raises(LogError, match="not all stored"):
            LOG.perfect_hash_run(conn, 8, 0, 3)  # node (8, 2) is not complete at 600 leaves
        with pytest.raises(LogError, match="not all stored"):
            LOG.record_cid_run(conn, 590, 601)
        with pytest.raises(IndexOutOfRangeError):
            LOG.perfect_hash_run(conn, 0, 10, 5)
    with sql_engine.begin() as conn:
        conn.execute(delete(log_nodes).where(log_nodes.c.level == 8, log_nodes.c.idx == 1))
    with sql_engine.connect() as conn, pytest.raises(LogError, match="log is corrupt"):
        LOG.perfect_hash_run(conn, 8, 0, 2)
