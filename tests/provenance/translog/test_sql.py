"""SqlTransparencyLog on SQLite and PostgreSQL (``sql_engine`` runs every test on both), checked against the
in-memory log (itself checked against the RFC 6962 vectors) and the pure verifiers."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from provenance.errors import IndexOutOfRangeError, LogError
from provenance.translog.hashing import EMPTY_ROOT, leaf_hash
from provenance.translog.proofs import verify_consistency, verify_inclusion
from provenance.translog.sql import SqlTransparencyLog, log_leaves, log_nodes
from provenance.translog.tree import MemoryMerkleLog

LOG = SqlTransparencyLog()
SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 70]


def cid(i: int) -> str:
    return f"bafyreitest{i:06d}"


def _memory(cids: list[str]) -> MemoryMerkleLog:
    return MemoryMerkleLog(c.encode() for c in cids)


def test_empty_log(sql_engine: Engine) -> None:
    with sql_engine.connect() as conn:
        assert LOG.size(conn) == 0
        assert LOG.root(conn) == EMPTY_ROOT
        assert LOG.root(conn, 0) == EMPTY_ROOT
        assert LOG.index_of(conn, cid(0)) is None
        assert LOG.consistency_proof(conn, 0, 0) == []
        with pytest.raises(IndexOutOfRangeError, match=r"leaf index 0 is out of range for a log of size 0"):
            LOG.leaf(conn, 0)
        with pytest.raises(IndexOutOfRangeError, match=r"tree size 1 is larger than the log, which has 0 leaves"):
            LOG.inclusion_proof(conn, 0, 1)
        with pytest.raises(IndexOutOfRangeError):
            LOG.root(conn, 1)


def test_single_appends_match_memory_log_and_verify(sql_engine: Engine) -> None:
    cids = [cid(i) for i in range(max(SIZES))]
    mem = _memory(cids)
    for i, c in enumerate(cids):
        with sql_engine.begin() as conn:
            got = LOG.append(conn, c)
        assert got.index == i
        assert got.leaf_hash == leaf_hash(c.encode("utf-8")) == mem.leaf_hash(i)

    with sql_engine.connect() as conn:
        assert LOG.size(conn) == len(cids)
        assert LOG.root(conn) == mem.root()
        assert LOG.index_of(conn, cids[17]) == 17
        assert LOG.leaf(conn, 17) == mem.leaf_hash(17)
        entry = LOG.leaf_entry(conn, 17)
        assert (entry.index, entry.leaf_hash, entry.record_cid) == (17, mem.leaf_hash(17), cids[17])
        for size in SIZES:
            root = LOG.root(conn, size)
            assert root == mem.root(size)
            for index in range(size):
                proof = LOG.inclusion_proof(conn, index, size)
                assert proof == mem.inclusion_proof(index, size)
                verify_inclusion(index, size, mem.leaf_hash(index), proof, root)
            for size1 in range(size + 1):
                proof = LOG.consistency_proof(conn, size1, size)
                assert proof == mem.consistency_proof(size1, size)
                verify_consistency(size1, size, proof, mem.root(size1), root)
        with pytest.raises(IndexOutOfRangeError, match=r"size1 5 is larger than size2 4"):
            LOG.consistency_proof(conn, 5, 4)
        with pytest.raises(IndexOutOfRangeError, match=r"leaf index 70 is out of range for a tree of size 70"):
            LOG.inclusion_proof(conn, 70, 70)


def test_append_many_matches_single_appends(sql_engine: Engine) -> None:
    cids = [cid(i) for i in range(150)]
    mem = _memory(cids)
    # Uneven batches so batch boundaries fall on and off power-of-two edges.
    batches = [cids[0:1], cids[1:8], cids[8:9], cids[9:64], cids[64:65], [], cids[65:150]]
    n = 0
    for batch in batches:
        with sql_engine.begin() as conn:
            got = LOG.append_many(conn, batch)
        assert [a.index for a in got] == list(range(n, n + len(batch)))
        n += len(batch)
        with sql_engine.connect() as conn:
            assert LOG.root(conn) == mem.root(n)
    with sql_engine.connect() as conn:
        stored = conn.execute(select(log_nodes.c.level, log_nodes.c.idx, log_nodes.c.hash)).all()
        # Exactly the complete perfect nodes above the leaves, each with the memory log's hash.
        assert len(stored) == 150 - bin(150).count("1")
        for level, idx, h in stored:
            assert bytes(h) == mem.perfect_hash(level, idx)


def test_duplicate_cid_is_refused_and_nothing_written(sql_engine: Engine) -> None:
    with sql_engine.begin() as conn:
        LOG.append_many(conn, [cid(0), cid(1), cid(2)])
    with sql_engine.begin() as conn:
        with pytest.raises(LogError, match=rf"record CID {cid(1)} is already in the log at index 1"):
            LOG.append(conn, cid(1))
        with pytest.raises(LogError, match=rf"record CID {cid(1)} is already in the log at index 1"):
            LOG.append_many(conn, [cid(3), cid(1)])
        with pytest.raises(LogError, match=rf"record CID {cid(4)} appears more than once in the batch"):
            LOG.append_many(conn, [cid(4), cid(5), cid(4)])
        with pytest.raises(LogError, match=r"non-empty string"):
            LOG.append(conn, "")
        with pytest.raises(LogError, match=r"without NUL"):
            LOG.append(conn, "bafy\x00")
        assert LOG.size(conn) == 3
        assert LOG.index_of(conn, cid(3)) is None
    with sql_engine.connect() as conn:
        assert conn.execute(select(log_leaves.c.idx)).scalars().all() == [0, 1, 2]


def test_append_rolls_back_with_the_callers_transaction(sql_engine: Engine) -> None:
    with sql_engine.begin() as conn:
        LOG.append(conn, cid(0))

    class Boom(Exception):
        pass

    with pytest.raises(Boom), sql_engine.begin() as conn:
        assert LOG.append(conn, cid(1)).index == 1
        assert LOG.size(conn) == 2  # visible inside the transaction
        raise Boom
    with sql_engine.begin() as conn:
        assert LOG.size(conn) == 1
        assert LOG.index_of(conn, cid(1)) is None
        assert LOG.append(conn, cid(2)).index == 1  # the index is reused, no gap
    with sql_engine.connect() as conn:
        assert LOG.root(conn) == _memory([cid(0), cid(2)]).root()


def test_concurrent_appenders_get_distinct_consecutive_indices(sql_engine: Engine) -> None:
    per_thread = 200
    results: dict[int, list[int]] = {0: [], 1: []}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def worker(t: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                with sql_engine.begin() as conn:
                    results[t].append(LOG.append(conn, f"bafythread{t}-{i:04d}").index)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in (0, 1)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors, errors
    assert sorted(results[0] + results[1]) == list(range(2 * per_thread))
    for r in results.values():
        assert r == sorted(r)  # each thread's own appends are ordered

    with sql_engine.connect() as conn:
        assert LOG.size(conn) == 2 * per_thread
        order = conn.execute(select(log_leaves.c.record_cid).order_by(log_leaves.c.idx)).scalars().all()
        mem = _memory(list(order))
        assert LOG.root(conn) == mem.root()
        # Interleaving really happened and proofs across it still verify.
        for index in (0, 137, 2 * per_thread - 1):
            proof = LOG.inclusion_proof(conn, index, 2 * per_thread)
            verify_inclusion(index, 2 * per_thread, mem.leaf_hash(index), proof, mem.root())
