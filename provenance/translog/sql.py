"""The transparency log stored in SQL (SQLite or PostgreSQL, same code), via SQLAlchemy Core.

Tables (registered on :data:`provenance.db.metadata`):

* ``log_leaves(idx, leaf_hash, record_cid)`` — one row per leaf; ``record_cid`` is unique, so a record is logged once.
* ``log_nodes(level, idx, hash)`` — every *complete* perfect subtree above the leaves (``level >= 1``); level 0 is
  ``log_leaves.leaf_hash``. Rows are written once, in the transaction that appends their last leaf, never updated.
* ``log_state(id = 1, size)`` — one row: the number of leaves. Appenders lock it (``SELECT ... FOR UPDATE`` on
  PostgreSQL; SQLite writers are already serialised by ``BEGIN IMMEDIATE`` in :func:`provenance.db.make_engine`), so
  concurrent appenders queue instead of racing for an index.

Every method takes the caller's :class:`~sqlalchemy.engine.Connection` and never commits: the caller inserts its
record row and appends the leaf in one transaction, and commits (or rolls back) both. Appending locks ``log_state``
until that commit, so keep those transactions short. Readers need no lock of their own: a reader sees a committed size
together with every node that size needs (nodes are immutable). On PostgreSQL use the default READ COMMITTED
isolation for appenders; on SQLite, :func:`provenance.db.make_engine` opens every transaction, readers' too, with
``BEGIN IMMEDIATE``, so there readers and appenders take turns.

Bulk paths on PostgreSQL send a batch as one array per column (``unnest``); SQLite uses ``executemany``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    CompoundSelect,
    Connection,
    LargeBinary,
    Select,
    SmallInteger,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    event,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.expression import Insert

from provenance.db import metadata
from provenance.errors import IndexOutOfRangeError, LogError
from provenance.translog import tree
from provenance.translog.hashing import HASH_SIZE, leaf_hash, node_hash, record_leaf_data

__all__ = ["AppendedLeaf", "LogLeaf", "SqlTransparencyLog", "log_leaves", "log_nodes", "log_state"]

log_leaves = Table(
    "log_leaves",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("leaf_hash", LargeBinary(HASH_SIZE), nullable=False),
    Column("record_cid", Text, nullable=False, unique=True),
)

log_nodes = Table(
    "log_nodes",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(HASH_SIZE), nullable=False),
    CheckConstraint("level >= 1", name="log_nodes_level_above_leaves"),
)

log_state = Table(
    "log_state",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="log_state_single_row"),
    CheckConstraint("size >= 0", name="log_state_size_nonnegative"),
)


@event.listens_for(log_state, "after_create")
def _insert_state_row(target: Table, connection: Connection, **_kw: object) -> None:
    connection.execute(insert(target).values(id=1, size=0))


@dataclass(frozen=True, slots=True)
class AppendedLeaf:
    index: int
    leaf_hash: bytes


@dataclass(frozen=True, slots=True)
class LogLeaf:
    index: int
    leaf_hash: bytes
    record_cid: str


# Keep statements well under SQLite's bound-parameter limit (32766 since 3.32; 999 before).
_CHUNK = 300


def _chunks(seq: Sequence[object], n: int = _CHUNK) -> Iterable[Sequence[object]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


class _SqlNodes:
    """A :class:`tree.BatchNodeSource` over one connection, at a size read once per operation."""

    def __init__(self, conn: Connection, size: int) -> None:
        self._conn = conn
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def perfect_hash(self, level: int, index: int) -> bytes:
        got = self.perfect_hashes([(level, index)])
        if (level, index) not in got:
            raise LogError(f"perfect node (level {level}, index {index}) is not stored")
        return got[(level, index)]

    def perfect_hashes(self, nodes: Sequence[tree.Node]) -> Mapping[tree.Node, bytes]:
        return _fetch_nodes(self._conn, nodes)


# Statements are built once (per shape): SQLAlchemy then only binds values, which keeps per-append overhead low.
# Upper nodes are matched by an OR of (level = ? AND idx = ?) pairs rather than a row-value IN list, because SQLite
# answers the latter with a full table scan while both engines use the primary key for the former.
_NODE_CHUNK = 100


@functools.lru_cache(maxsize=128)
def _fetch_stmt(n_nodes: int) -> Select[int, int, bytes] | CompoundSelect[int, int, bytes]:
    leaves = select(
        literal(0, SmallInteger).label("level"), log_leaves.c.idx, log_leaves.c.leaf_hash.label("hash")
    ).where(log_leaves.c.idx.in_(bindparam("leaf_idx", expanding=True)))
    if n_nodes == 0:
        return leaves
    pairs = [
        and_(log_nodes.c.level == bindparam(f"l{k}"), log_nodes.c.idx == bindparam(f"i{k}")) for k in range(n_nodes)
    ]
    nodes = select(log_nodes.c.level, log_nodes.c.idx, log_nodes.c.hash).where(or_(*pairs))
    return union_all(leaves, nodes)


_LOCK_SIZE = select(log_state.c.size).where(log_state.c.id == 1).with_for_update()
_READ_SIZE = select(log_state.c.size).where(log_state.c.id == 1)
_SET_SIZE = update(log_state).where(log_state.c.id == 1).values(size=bindparam("new_size"))
# No ORDER BY/LIMIT here: "ORDER BY idx LIMIT 1" tempts PostgreSQL (notably in a generic plan cached while the
# table was small) to walk the primary key and filter, i.e. scan the whole log when, as usual, nothing matches.
_FIND_CIDS = select(log_leaves.c.record_cid, log_leaves.c.idx).where(
    log_leaves.c.record_cid.in_(bindparam("cids", expanding=True))
)
_INDEX_OF = select(log_leaves.c.idx).where(log_leaves.c.record_cid == bindparam("cid"))
_LEAF = select(log_leaves.c.leaf_hash, log_leaves.c.record_cid).where(log_leaves.c.idx == bindparam("idx"))
_LEAF_RUN = (
    select(log_leaves.c.idx, log_leaves.c.leaf_hash)
    .where(log_leaves.c.idx >= bindparam("start"), log_leaves.c.idx < bindparam("end"))
    .order_by(log_leaves.c.idx)
)
_NODE_RUN = (
    select(log_nodes.c.idx, log_nodes.c.hash)
    .where(log_nodes.c.level == bindparam("level"), log_nodes.c.idx >= bindparam("start"),
           log_nodes.c.idx < bindparam("end"))
    .order_by(log_nodes.c.idx)
)
_CID_RUN = (
    select(log_leaves.c.idx, log_leaves.c.record_cid)
    .where(log_leaves.c.idx >= bindparam("start"), log_leaves.c.idx < bindparam("end"))
    .order_by(log_leaves.c.idx)
)


def _fetch_nodes(conn: Connection, nodes: Sequence[tree.Node]) -> dict[tree.Node, bytes]:
    """Hashes of the given perfect nodes, in one round trip per hundred: leaves from ``log_leaves``, the rest from
    ``log_nodes``. Nodes not stored are simply absent from the result."""
    out: dict[tree.Node, bytes] = {}
    leaf_idx = sorted({i for level, i in nodes if level == 0})
    upper = sorted({(level, i) for level, i in nodes if level > 0})
    while leaf_idx or upper:
        leaf_chunk, leaf_idx = leaf_idx[:_CHUNK], leaf_idx[_CHUNK:]
        node_chunk, upper = upper[:_NODE_CHUNK], upper[_NODE_CHUNK:]
        params: dict[str, object] = {"leaf_idx": leaf_chunk}
        for k, (level, i) in enumerate(node_chunk):
            params[f"l{k}"] = level
            params[f"i{k}"] = i
        rows = conn.execute(_fetch_stmt(len(node_chunk)), params)
        out.update(((int(lv), int(i)), bytes(h)) for lv, i, h in rows)
    return out


# PostgreSQL bulk paths: a whole batch travels as one array parameter per column (``unnest``) rather than thousands
# of scalars, which psycopg would otherwise send as one pipelined INSERT per row.
def _pg_bulk_insert(table: Table) -> tuple[Insert, list[str]]:
    cols = [c.name for c in table.columns]
    arrays = [bindparam(f"a_{c.name}", type_=postgresql.ARRAY(c.type)) for c in table.columns]
    rows = func.unnest(*arrays).table_valued(*cols).render_derived()
    return insert(table).from_select(cols, select(*(rows.c[c] for c in cols))), cols


_PG_BULK = {t.name: _pg_bulk_insert(t) for t in (log_leaves, log_nodes)}
_PG_FIND_CIDS = select(log_leaves.c.record_cid, log_leaves.c.idx).where(
    log_leaves.c.record_cid == any_(bindparam("cids", type_=postgresql.ARRAY(Text)))
)


def _insert_rows(conn: Connection, table: Table, rows: list[dict[str, object]]) -> None:
    if not rows:
        return
    if len(rows) > 1 and conn.dialect.name == "postgresql":
        stmt, cols = _PG_BULK[table.name]
        conn.execute(stmt, {f"a_{c}": [r[c] for r in rows] for c in cols})
    else:
        conn.execute(insert(table), rows)  # one row, or an executemany (a C loop in sqlite3)


def _find_logged(conn: Connection, cids: list[str]) -> tuple[str, int] | None:
    """The earliest-logged of ``cids`` already in the log, with its index, or None."""
    if conn.dialect.name == "postgresql":
        rows = list(conn.execute(_PG_FIND_CIDS, {"cids": cids}))
    else:
        rows = [r for chunk in _chunks(cids) for r in conn.execute(_FIND_CIDS, {"cids": list(chunk)})]
    if not rows:
        return None
    cid, idx = min(rows, key=lambda r: int(r[1]))
    return cid, int(idx)


def _peaks(size: int) -> list[tree.Node]:
    """Perfect nodes tiling ``[0, size)``, largest first (the log's right edge)."""
    return tree.perfect_nodes_of_range(0, size) if size else []


class SqlTransparencyLog:
    """Append-only RFC 6962 log in the ``log_*`` tables. Stateless: one instance can serve many connections."""

    # --- writing -----------------------------------------------------------------------------------------------------
    def append(self, conn: Connection, record_cid: str) -> AppendedLeaf:
        """Append the leaf committing to ``record_cid`` in the caller's transaction; return its index and hash."""
        return self.append_many(conn, [record_cid])[0]

    def append_many(self, conn: Connection, record_cids: Sequence[str]) -> list[AppendedLeaf]:
        """Append one leaf per CID, in order, in the caller's transaction (bulk ingest).

        Raises :class:`LogError` (and writes nothing) if a CID is repeated in the batch or already in the log.
        """
        cids = list(record_cids)
        if not cids:
            return []
        for cid in cids:
            if not isinstance(cid, str) or not cid or "\x00" in cid:
                raise LogError(f"record CID must be a non-empty string without NUL characters, got {cid!r}")
        seen: set[str] = set()
        for cid in cids:
            if cid in seen:
                raise LogError(f"record CID {cid} appears more than once in the batch")
            seen.add(cid)

        start = self._lock_size(conn)
        logged = _find_logged(conn, cids)
        if logged is not None:
            raise LogError(f"record CID {logged[0]} is already in the log at index {logged[1]}")

        # The right edge before this batch: what new parents hash together with.
        peak_nodes = _peaks(start)
        known = _fetch_nodes(conn, peak_nodes)
        if len(known) != len(peak_nodes):
            raise LogError(f"log is corrupt: right-edge nodes {sorted(set(peak_nodes) - set(known))} are missing")
        stack = [known[n] for n in peak_nodes]

        leaf_rows: list[dict[str, object]] = []
        node_rows: list[dict[str, object]] = []
        appended: list[AppendedLeaf] = []
        for offset, cid in enumerate(cids):
            index = start + offset
            h = leaf_hash(record_leaf_data(cid))
            leaf_rows.append({"idx": index, "leaf_hash": h, "record_cid": cid})
            appended.append(AppendedLeaf(index, h))
            level, i, cur = 0, index, h
            while i & 1:
                cur = node_hash(stack.pop(), cur)
                level += 1
                i >>= 1
                node_rows.append({"level": level, "idx": i, "hash": cur})
            stack.append(cur)

        _insert_rows(conn, log_leaves, leaf_rows)
        _insert_rows(conn, log_nodes, node_rows)
        conn.execute(_SET_SIZE, {"new_size": start + len(cids)})
        return appended

    def _lock_size(self, conn: Connection) -> int:
        size = conn.execute(_LOCK_SIZE).scalar_one_or_none()
        if size is None:
            self._insert_state_row(conn)
            size = conn.execute(_LOCK_SIZE).scalar_one()
        return int(size)

    @staticmethod
    def _insert_state_row(conn: Connection) -> None:
        """Create the state row if a schema was made without the ``after_create`` hook (idempotent, race-safe)."""
        dialect = conn.dialect.name
        if dialect == "postgresql":
            conn.execute(postgresql.insert(log_state).values(id=1, size=0).on_conflict_do_nothing())
        elif dialect == "sqlite":
            conn.execute(sqlite.insert(log_state).values(id=1, size=0).on_conflict_do_nothing())
        else:
            raise LogError(f"unsupported database dialect {dialect!r}")

    # --- reading -----------------------------------------------------------------------------------------------------
    def size(self, conn: Connection) -> int:
        """Number of leaves committed (as seen by ``conn``'s transaction)."""
        size = conn.execute(_READ_SIZE).scalar_one_or_none()
        return 0 if size is None else int(size)

    def leaf(self, conn: Connection, index: int) -> bytes:
        """Leaf hash of leaf ``index``."""
        return self.leaf_entry(conn, index).leaf_hash

    def leaf_entry(self, conn: Connection, index: int) -> LogLeaf:
        """Leaf ``index``: its hash and the record CID it commits to."""
        size = self.size(conn)
        if not 0 <= index < size:
            raise IndexOutOfRangeError(f"leaf index {index} is out of range for a log of size {size}")
        row = conn.execute(_LEAF, {"idx": index}).one()
        return LogLeaf(index, bytes(row[0]), row[1])

    def index_of(self, conn: Connection, record_cid: str) -> int | None:
        """Leaf index of ``record_cid``, or ``None`` if it is not in the log."""
        idx = conn.execute(_INDEX_OF, {"cid": record_cid}).scalar_one_or_none()
        return None if idx is None else int(idx)

    def _source(self, conn: Connection) -> _SqlNodes:
        return _SqlNodes(conn, self.size(conn))

    def root(self, conn: Connection, size: int | None = None) -> bytes:
        """Root hash at ``size`` leaves (default: the current size)."""
        src = self._source(conn)
        return tree.root_hash(src, src.size if size is None else size)

    def inclusion_proof(self, conn: Connection, index: int, size: int) -> list[bytes]:
        """Audit path of leaf ``index`` in the tree of ``size`` leaves (``size`` at most the current size)."""
        return tree.inclusion_proof(self._source(conn), index, size)

    def consistency_proof(self, conn: Connection, size1: int, size2: int) -> list[bytes]:
        """Proof that the tree of ``size1`` leaves is a prefix of the tree of ``size2`` leaves."""
        return tree.consistency_proof(self._source(conn), size1, size2)

    # --- tiles (C2SP tlog-tiles; see translog/tiles.py) --------------------------------------------------------------
    def perfect_hash_run(self, conn: Connection, level: int, start: int, end: int) -> list[bytes]:
        """The perfect nodes ``(level, start) .. (level, end - 1)`` in order, in one range read: leaf hashes for
        level 0, stored subtree hashes above. A tile is such a run. Raises :class:`LogError` when one is not stored
        (the caller asks only for nodes complete at a size it has read)."""
        if level < 0 or not 0 <= start <= end:
            raise IndexOutOfRangeError(f"no perfect-node run at level {level}, [{start}, {end})")
        if start == end:
            return []
        if level == 0:
            stmt = _LEAF_RUN
            params: dict[str, int] = {"start": start, "end": end}
        else:
            stmt = _NODE_RUN
            params = {"level": level, "start": start, "end": end}
        rows = conn.execute(stmt, params).all()
        if len(rows) != end - start or any(int(i) != start + k for k, (i, _h) in enumerate(rows)):
            raise LogError(f"log is corrupt: perfect nodes at level {level}, [{start}, {end}) are not all stored")
        return [bytes(h) for _i, h in rows]

    def record_cid_run(self, conn: Connection, start: int, end: int) -> list[str]:
        """The record CIDs of leaves ``start .. end - 1`` in order, in one range read (an entry bundle)."""
        if not 0 <= start <= end:
            raise IndexOutOfRangeError(f"no leaf run [{start}, {end})")
        if start == end:
            return []
        rows = conn.execute(_CID_RUN, {"start": start, "end": end}).all()
        if len(rows) != end - start or any(int(i) != start + k for k, (i, _c) in enumerate(rows)):
            raise LogError(f"log is corrupt: leaves [{start}, {end}) are not all stored")
        return [str(c) for _i, c in rows]
