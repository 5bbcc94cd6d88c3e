"""Hash cache: packed codes keyed by (content key, method, model id) in one SQLite file (no pickle).

The content key is the file's SHA-256 for real images, or ``synth:<sha256 of the recipe>`` for synthesised distractor
images, so re-runs (and runs over a rebuilt but byte-identical dataset) skip all hashing. The model id is part of
the key so an upgraded library or a retrained model never reuses stale codes.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import numpy as np

_SCHEMA = """
CREATE TABLE IF NOT EXISTS codes (
    content TEXT NOT NULL,
    method TEXT NOT NULL,
    model_id TEXT NOT NULL,
    code BLOB NOT NULL,
    PRIMARY KEY (content, method, model_id)
) WITHOUT ROWID
"""


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class HashCache:
    """A small wrapper over one SQLite table; use as a context manager or call ``close``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def get_many(self, keys: Iterable[str], method: str, model_id: str) -> dict[str, np.ndarray]:
        keys = list(keys)
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT content, code FROM codes WHERE method=? AND model_id=? AND content IN ({marks})",
                (method, model_id, *chunk))
            found.update((k, np.frombuffer(code, dtype=np.uint8).copy()) for k, code in rows)
        return found

    def put_many(self, items: Iterable[tuple[str, np.ndarray]], method: str, model_id: str) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO codes (content, method, model_id, code) VALUES (?, ?, ?, ?)",
                ((k, method, model_id, np.asarray(c, dtype=np.uint8).tobytes()) for k, c in items))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> HashCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
