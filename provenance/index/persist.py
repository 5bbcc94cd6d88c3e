"""Index files: faiss's binary serialisation plus a small JSON sidecar that says what the bytes should be.

Layout: ``<path>`` holds the index bytes (``faiss.serialize_index_binary`` for the faiss-backed kinds, its own
layout for :mod:`provenance.index.compact_mih`); ``<path>.json`` holds the format version, the index kind and
parameters, the bit width, the live count and largest id, and the sha256 of ``<path>``. The sha256 is
checked *before* faiss parses anything, so a truncated or bit-rotted file is refused with a clear message instead of
crashing or loading garbage. Both files are written to temporary names and renamed into place; a crash between the
two renames leaves a sha256 mismatch, which is detected, never a silently wrong index. The sidecar is not a
signature: the catalog in SQL is the source of truth and the index can always be rebuilt from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from provenance.index.errors import IndexCorruptError, IndexFileMissingError

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "Sidecar", "read_index_files", "read_sidecar", "sidecar_path",
           "write_index_files"]

FORMAT_NAME = "provenance-binary-index"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Sidecar:
    kind: str
    bits: int
    count: int
    max_id: int | None
    sha256: str
    size: int
    params: dict[str, int] = field(default_factory=dict)
    faiss_version: str = ""
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def write_index_files(path: Path, data: np.ndarray | Sequence[np.ndarray], *, kind: str, bits: int, count: int,
                      max_id: int | None, params: dict[str, int], faiss_version: str) -> Sidecar:
    """Write ``data`` (serialised index bytes, or a sequence of arrays whose raw bytes are written one after the
    other, so a large index need not be copied into one buffer) to ``path`` and its sidecar beside it; returns the
    sidecar."""
    parts = [data] if isinstance(data, np.ndarray) else list(data)
    raws = [memoryview(np.ascontiguousarray(part).reshape(-1).view(np.uint8)) for part in parts]
    digest = hashlib.sha256()
    for raw in raws:
        digest.update(raw)
    sidecar = Sidecar(kind=kind, bits=bits, count=count, max_id=max_id, sha256=digest.hexdigest(),
                      size=sum(len(raw) for raw in raws), params=dict(params), faiss_version=faiss_version)
    path.parent.mkdir(parents=True, exist_ok=True)
    side = sidecar_path(path)
    tag = f"{os.getpid()}.{threading.get_ident()}"  # unique per writer, so concurrent saves never share a temp file
    tmp_index = path.with_name(f".{path.name}.{tag}.tmp")
    tmp_side = side.with_name(f".{side.name}.{tag}.tmp")
    try:
        _write_synced(tmp_index, *raws)
        _write_synced(tmp_side, sidecar.to_json().encode("utf-8"))
        os.replace(tmp_index, path)
        os.replace(tmp_side, side)
    finally:
        tmp_index.unlink(missing_ok=True)
        tmp_side.unlink(missing_ok=True)
    return sidecar


def _write_synced(path: Path, *chunks: memoryview | bytes) -> None:
    with open(path, "wb") as f:
        for chunk in chunks:
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())


def read_sidecar(path: Path) -> Sidecar:
    """Parse and check ``<path>.json``: :class:`IndexFileMissingError` or :class:`IndexCorruptError` if unusable."""
    side = sidecar_path(path)
    if not side.exists():
        if path.exists():
            raise IndexCorruptError(f"{path}: its sidecar {side.name} is missing, so the file cannot be verified")
        raise IndexFileMissingError(f"no index file at {path}")
    try:
        obj = json.loads(side.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexCorruptError(f"{side}: unreadable sidecar: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT_NAME:
        raise IndexCorruptError(f"{side}: not a {FORMAT_NAME} sidecar")
    if obj.get("format_version") != FORMAT_VERSION:
        raise IndexCorruptError(f"{side}: format version {obj.get('format_version')!r} is not supported "
                                f"(this code reads version {FORMAT_VERSION}); rebuild the index")
    try:
        sidecar = Sidecar(**obj)
    except TypeError as exc:
        raise IndexCorruptError(f"{side}: unexpected sidecar fields: {exc}") from exc
    ints_ok = all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                  for v in (sidecar.bits, sidecar.count, sidecar.size))
    if (not ints_ok or not isinstance(sidecar.kind, str) or not isinstance(sidecar.sha256, str)
            or not (sidecar.max_id is None or isinstance(sidecar.max_id, int))
            or not isinstance(sidecar.params, dict)):
        raise IndexCorruptError(f"{side}: malformed sidecar values")
    return sidecar


def read_index_files(path: Path) -> tuple[Sidecar, np.ndarray]:
    """The sidecar and the index bytes, after checking the bytes' size and sha256 against the sidecar."""
    sidecar = read_sidecar(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise IndexCorruptError(f"{path}: the index file is missing but its sidecar exists") from None
    except OSError as exc:
        raise IndexCorruptError(f"{path}: unreadable: {exc}") from exc
    if len(raw) != sidecar.size:
        raise IndexCorruptError(f"{path}: {len(raw)} bytes, but its sidecar says {sidecar.size} (truncated?)")
    digest = hashlib.sha256(raw).hexdigest()
    if digest != sidecar.sha256:
        raise IndexCorruptError(f"{path}: sha256 {digest} does not match its sidecar ({sidecar.sha256})")
    return sidecar, np.frombuffer(raw, dtype=np.uint8)
