"""The keyring as one sealed blob: a tar of ``DATA_DIR/keys`` (in memory: a keyring is a few KB), and back.

What it holds: every file under ``keys/``: the service keys (``keys/service/``: the log's checkpoint and
attestation key, the chain anchorer key once ``provenance chain rotate-anchorer`` installed one, and any other
service key) and the custodial publisher keys (``keys/publishers/``, with the
``.rotated-N`` keys a rotation kept). The custodial keys go too because without them a restored service could no
longer sign for its service-custody publishers; publishers that hold their own keys have none here. Keys that live
outside the data directory (``PROVENANCE_CHAIN_PRIVATE_KEY``, the C2PA signing key) are configuration, not data:
back them up with the configuration (docs/backup.md).
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from pathlib import Path

from provenance.errors import BackupArchiveError

__all__ = ["pack_keyring", "unpack_keyring", "write_keyring"]

_KEY_NAME = re.compile(r"^(service|publishers)/[a-z0-9][a-z0-9._-]{0,120}$")


def pack_keyring(root: Path) -> tuple[bytes, int]:
    """A tar of the key files under ``root`` (temp files skipped) and how many there are."""
    buf = io.BytesIO()
    count = 0
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if root.is_dir():
            for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".tmp")):
                name = path.relative_to(root).as_posix()
                if not _KEY_NAME.match(name):
                    continue  # not a key file this code writes
                data = path.read_bytes()
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o600, 0
                tar.addfile(info, io.BytesIO(data))
                count += 1
    return buf.getvalue(), count


def unpack_keyring(data: bytes) -> dict[str, bytes]:
    """The key files of a packed keyring, by relative name (checked: nothing outside ``service/``, ``publishers/``)."""
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for info in tar:
                if not info.isreg() or not _KEY_NAME.match(info.name) or info.name in files:
                    raise BackupArchiveError(f"the keyring holds an unexpected entry {info.name!r}")
                fh = tar.extractfile(info)
                assert fh is not None
                files[info.name] = fh.read()
    except tarfile.TarError as exc:
        raise BackupArchiveError(f"the sealed keyring is malformed: {exc}") from exc
    return files


def write_keyring(root: Path, files: dict[str, bytes]) -> None:
    """Write key files under ``root`` as the keyring does: directories 0700, files 0600."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path.parent, 0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
