"""The witness's persisted state: one JSON file in ``--state DIR``, replaced atomically, and a lock on the directory.

``state.json`` holds, per log origin, the size and root of the latest cosigned checkpoint (and that checkpoint's
note, for the record). A new state is written to a temporary file, flushed and fsync'd, renamed over the old one,
and the directory is fsync'd, all before the cosignature leaves the process: a witness that cosigns and then
forgets (power cut, crash) could later cosign a fork. A state file that exists but cannot be read stops the witness
from starting instead of letting it start over from nothing. One process at a time may use a state directory
(``flock`` on ``DIR/lock``): two witnesses sharing one state would each check against a stale view.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from provenance.witness.errors import WitnessStateError
from provenance.witness.state import LogHead

__all__ = ["STATE_FORMAT", "StateDir"]

STATE_FORMAT = "provenance-witness-state/1"
STATE_FILE = "state.json"
LOCK_FILE = "lock"


class StateDir:
    """A locked state directory. ``heads`` is what was last persisted; :meth:`save` replaces it durably."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._lock: IO[bytes] | None = open(self.path / LOCK_FILE, "ab")  # noqa: SIM115 - held until close()
        except OSError as exc:
            raise WitnessStateError(f"cannot use witness state directory {self.path}: {exc}") from exc
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            self._lock = None
            raise WitnessStateError(f"witness state directory {self.path} is in use by another process") from None
        try:
            self.heads, self.notes = self._load()
        except WitnessStateError:
            self.close()
            raise

    @property
    def file(self) -> Path:
        return self.path / STATE_FILE

    def _load(self) -> tuple[dict[str, LogHead], dict[str, str]]:
        try:
            raw = self.file.read_bytes()
        except FileNotFoundError:
            return {}, {}
        except OSError as exc:
            raise WitnessStateError(f"cannot read witness state {self.file}: {exc}") from exc
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict) or obj.get("format") != STATE_FORMAT or not isinstance(obj.get("logs"), dict):
                raise ValueError(f"not a {STATE_FORMAT} document")
            heads: dict[str, LogHead] = {}
            notes: dict[str, str] = {}
            for origin, entry in obj["logs"].items():
                root = base64.b64decode(entry["root"], validate=True)
                heads[origin] = LogHead(int(entry["size"]), root)
                if isinstance(entry.get("checkpoint"), str):
                    notes[origin] = entry["checkpoint"]
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise WitnessStateError(
                f"witness state {self.file} is corrupt ({exc}); refusing to start from an empty state, which could "
                "cosign a fork. Restore it from a backup."
            ) from exc
        return heads, notes

    def save(self, heads: Mapping[str, LogHead], notes: Mapping[str, str] | None = None) -> None:
        """Persist ``heads`` (and the cosigned notes) atomically and durably; only then update :attr:`heads`."""
        notes = dict(self.notes if notes is None else notes)
        doc: dict[str, Any] = {
            "format": STATE_FORMAT,
            "logs": {
                origin: {"size": head.size, "root": base64.b64encode(head.root).decode("ascii")}
                | ({"checkpoint": notes[origin]} if origin in notes else {})
                for origin, head in sorted(heads.items())
            },
        }
        data = json.dumps(doc, indent=2, sort_keys=True).encode("utf-8") + b"\n"
        tmp = self.path / f".{STATE_FILE}.{os.getpid()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.file)
            dir_fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise WitnessStateError(f"cannot persist witness state to {self.file}: {exc}") from exc
        self.heads = dict(heads)
        self.notes = notes

    def close(self) -> None:
        if self._lock is not None:
            try:
                fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            finally:
                self._lock.close()
                self._lock = None

    def __enter__(self) -> StateDir:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
