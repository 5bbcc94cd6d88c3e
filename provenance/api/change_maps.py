"""Change maps (PNG) that lookups produce, published under unguessable names for a limited time.

Each lookup writes into a fresh private directory; a map it produced is moved to ``<root>/<token>.png`` with a
random token, so one client cannot enumerate or guess another's maps, and only names of that exact form are ever
served (no path from the request reaches the file system). Maps older than the TTL are deleted, at most once a
minute, by the next lookup. The disk they use is bounded too: publishing a map beyond ``max_files`` maps or
``max_bytes`` bytes deletes the oldest first (``PROVENANCE_API_CHANGE_MAP_MAX_FILES`` / ``_MAX_BYTES``), and work
directories a killed process left behind go with the expired maps.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_NAME = re.compile(r"^[A-Za-z0-9_-]{16,64}\.png$")
_PRUNE_EVERY_S = 60.0


class ChangeMapStore:
    def __init__(self, root: Path, ttl_s: float, *, max_files: int = 1000, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.root = root
        self.ttl_s = ttl_s
        self.max_files = max_files
        self.max_bytes = max_bytes
        self._last_prune = 0.0
        self._lock = threading.Lock()

    @contextmanager
    def workdir(self) -> Iterator[Path]:
        """A private directory for one lookup to write its change map into; removed afterwards."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=".work-", dir=self.root))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def publish(self, produced: str | Path) -> str | None:
        """Move a map the lookup wrote to its public name (returned); None if it is gone (a concurrent identical
        lookup published it first)."""
        name = f"{secrets.token_urlsafe(18)}.png"
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            shutil.move(os.fspath(produced), self.root / name)
        except FileNotFoundError:
            return None
        self.prune()
        self._bound()
        return name

    def _bound(self) -> None:
        """Delete the oldest maps until at most ``max_files`` of at most ``max_bytes`` in all remain."""
        maps = []
        for path in self.root.glob("*.png"):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            maps.append((st.st_mtime, path.name, st.st_size, path))
        maps.sort()
        count, total = len(maps), sum(m[2] for m in maps)
        for _mtime, _name, size, path in maps:
            if count <= self.max_files and total <= self.max_bytes:
                break
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            count, total = count - 1, total - size

    def path_for(self, name: str) -> Path | None:
        """The file of a published, unexpired map, else None."""
        if not _NAME.match(name):
            return None
        path = self.root / name
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return None
        return path if age <= self.ttl_s else None

    def prune(self) -> None:
        now = time.time()
        with self._lock:
            if now - self._last_prune < _PRUNE_EVERY_S:
                return
            self._last_prune = now
        for path in self.root.glob("*.png"):
            try:
                if now - path.stat().st_mtime > self.ttl_s:
                    path.unlink()
            except FileNotFoundError:
                pass
        for work in self.root.glob(".work-*"):  # left by a process killed during a lookup
            try:
                if now - work.stat().st_mtime > self.ttl_s:
                    shutil.rmtree(work, ignore_errors=True)
            except FileNotFoundError:
                pass
