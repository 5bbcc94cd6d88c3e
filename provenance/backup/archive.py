"""The backup archive: one uncompressed tar whose last member, ``MANIFEST.json``, lists the SHA-256 and size of
every other member and is authenticated with the passphrase (:mod:`provenance.backup.sealing`).

Writing goes to a temporary file beside the target, fsynced and renamed into place, so a crash never leaves a
partial archive under the final name. Reading never extracts by the names in the tar: members are looked up by the
names this code expects, each must be a regular file with a plain relative name listed in the manifest exactly
once, and every byte read is hashed again against the manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from provenance.backup.sealing import BackupKeys, derive_keys
from provenance.canonical import canonical_json
from provenance.errors import BackupArchiveError, BackupError, BackupPassphraseError, InvalidRecordError

__all__ = ["ARCHIVE_FORMAT", "ArchiveWriter", "BackupArchive", "MANIFEST_NAME", "open_archive"]

ARCHIVE_FORMAT = "provenance-backup"
ARCHIVE_VERSION = 1
MANIFEST_NAME = "MANIFEST.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}(/[A-Za-z0-9][A-Za-z0-9._-]{0,199}){0,3}$")
_CHUNK = 1 << 20


def _sha256_file(fh: IO[bytes]) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    while chunk := fh.read(_CHUNK):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


class ArchiveWriter:
    """Members in, manifest last. Use as a context manager: the archive appears at ``path`` only on ``finish``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
        os.fchmod(fd, 0o600)  # the archive holds the database: owner only, like the keyring
        self._tmp = Path(tmp)
        self._fh = os.fdopen(fd, "wb")
        self._tar = tarfile.open(fileobj=self._fh, mode="w", format=tarfile.PAX_FORMAT)
        self.members: dict[str, dict[str, Any]] = {}

    def _info(self, name: str, size: int) -> tarfile.TarInfo:
        if not _NAME.match(name) or name in self.members or name == MANIFEST_NAME:
            raise BackupError(f"bad or repeated archive member name {name!r}")
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o600, 0
        return info

    def add_bytes(self, name: str, data: bytes) -> None:
        self._tar.addfile(self._info(name, len(data)), io.BytesIO(data))
        self.members[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}

    def add_file(self, name: str, src: Path) -> None:
        with src.open("rb") as fh:
            digest, size = _sha256_file(fh)
            fh.seek(0)
            self._tar.addfile(self._info(name, size), fh)
        self.members[name] = {"sha256": digest, "size": size}

    def finish(self, body: dict[str, Any], keys: BackupKeys) -> dict[str, Any]:
        """Write the manifest (``body`` + members + MAC), close, fsync and rename into place; returns it."""
        manifest = {"format": ARCHIVE_FORMAT, "version": ARCHIVE_VERSION, **body, "members": self.members}
        manifest["mac"] = keys.mac(canonical_json(manifest))
        data = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")
        info = tarfile.TarInfo(MANIFEST_NAME)
        info.size, info.mode, info.mtime = len(data), 0o600, 0
        self._tar.addfile(info, io.BytesIO(data))
        self._tar.close()
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._tmp, self.path)
        return manifest

    def abort(self) -> None:
        for closing in (self._tar.close, self._fh.close):
            try:
                closing()
            except (OSError, tarfile.TarError):
                pass
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None or self._tmp.exists():
            self.abort()


@dataclass
class BackupArchive:
    """An archive whose every member matched the manifest and whose manifest authenticated under the passphrase.
    Read members with :meth:`read_bytes` / :meth:`extract_to` / :meth:`iter_bytes`: each read is hashed again."""

    path: Path
    manifest: dict[str, Any]
    keys: BackupKeys
    _tar: tarfile.TarFile
    _members: dict[str, tarfile.TarInfo]

    def names(self, prefix: str = "") -> list[str]:
        return sorted(n for n in self._members if n.startswith(prefix))

    def has(self, name: str) -> bool:
        return name in self._members

    def _open(self, name: str) -> IO[bytes]:
        info = self._members.get(name)
        if info is None:
            raise BackupArchiveError(f"the archive has no member {name!r}")
        fh = self._tar.extractfile(info)
        assert fh is not None  # regular files only (checked when opened)
        return fh

    def _check(self, name: str, digest: str, size: int) -> None:
        want = self.manifest["members"][name]
        if (digest, size) != (want["sha256"], want["size"]):
            raise BackupArchiveError(f"member {name} changed while it was read (sha256 {digest}, manifest says "
                                     f"{want['sha256']})")

    def read_bytes(self, name: str) -> bytes:
        data = self._open(name).read()
        self._check(name, hashlib.sha256(data).hexdigest(), len(data))
        return data

    def iter_bytes(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        for name in self.names(prefix):
            yield name, self.read_bytes(name)

    def extract_to(self, name: str, dest: Path) -> None:
        h, size = hashlib.sha256(), 0
        src = self._open(name)
        with dest.open("wb") as out:
            while chunk := src.read(_CHUNK):
                h.update(chunk)
                size += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        self._check(name, h.hexdigest(), size)

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> BackupArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_archive(path: Path, passphrase: str) -> BackupArchive:
    """Open and verify ``path``: structure and SHA-256 of every member first (a corrupt archive is refused whatever
    the passphrase), then the manifest's MAC under ``passphrase`` (a wrong passphrase is refused). Writes nothing."""
    try:
        tar = tarfile.open(path, mode="r:")
    except FileNotFoundError:
        raise BackupArchiveError(f"no backup archive at {path}") from None
    except (tarfile.TarError, OSError) as exc:
        raise BackupArchiveError(f"{path} is not a backup archive (not a readable tar file: {exc})") from exc
    try:
        return _verify(path, tar, passphrase)
    except BaseException:
        tar.close()
        raise


def _verify(path: Path, tar: tarfile.TarFile, passphrase: str) -> BackupArchive:
    members: dict[str, tarfile.TarInfo] = {}
    digests: dict[str, tuple[str, int]] = {}
    try:
        for info in tar:
            if not info.isreg() or not _NAME.match(info.name) or info.name in members:
                raise BackupArchiveError(f"{path}: unexpected archive member {info.name!r} (not a plain file with "
                                         "a plain relative name, or repeated)")
            members[info.name] = info
            fh = tar.extractfile(info)
            assert fh is not None
            digests[info.name] = _sha256_file(fh)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupArchiveError(f"{path} is corrupt or truncated: {exc}") from exc
    if MANIFEST_NAME not in members:
        raise BackupArchiveError(f"{path} has no {MANIFEST_NAME}: not a provenance backup, or truncated")
    if list(members)[-1] != MANIFEST_NAME:
        raise BackupArchiveError(f"{path}: {MANIFEST_NAME} is not the last member (the archive was altered)")
    manifest = _parse_manifest(path, tar, members.pop(MANIFEST_NAME))
    listed = manifest["members"]
    missing = sorted(set(listed) - set(members))
    extra = sorted(set(members) - set(listed))
    if missing or extra:
        raise BackupArchiveError(f"{path} is corrupt: members missing {missing[:5]}, not in the manifest "
                                 f"{extra[:5]}")
    for name, (digest, size) in digests.items():
        if name == MANIFEST_NAME:
            continue
        want = listed[name]
        if (digest, size) != (want.get("sha256"), want.get("size")):
            raise BackupArchiveError(f"{path} is corrupt: member {name} has sha256 {digest} ({size} bytes), the "
                                     f"manifest says {want.get('sha256')} ({want.get('size')} bytes)")
    keys = derive_keys(passphrase, manifest.get("kdf", {}))
    body = {k: v for k, v in manifest.items() if k != "mac"}
    try:
        message = canonical_json(body)
    except InvalidRecordError as exc:
        raise BackupArchiveError(f"{path}: the manifest cannot be canonicalised: {exc}") from exc
    if not isinstance(manifest.get("mac"), str) or not keys.check_mac(message, manifest["mac"]):
        raise BackupPassphraseError(f"wrong passphrase for {path}: its manifest does not authenticate under it "
                                    "(or the manifest was altered after the backup was made)")
    return BackupArchive(path, manifest, keys, tar, members)


def _parse_manifest(path: Path, tar: tarfile.TarFile, info: tarfile.TarInfo) -> dict[str, Any]:
    fh = tar.extractfile(info)
    assert fh is not None
    try:
        manifest = json.loads(fh.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackupArchiveError(f"{path}: {MANIFEST_NAME} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != ARCHIVE_FORMAT:
        raise BackupArchiveError(f"{path} is not a provenance backup (manifest format "
                                 f"{manifest.get('format') if isinstance(manifest, dict) else None!r})")
    if manifest.get("version") != ARCHIVE_VERSION:
        raise BackupArchiveError(f"{path} is a backup of format version {manifest.get('version')!r}; this version "
                                 f"of provenance reads version {ARCHIVE_VERSION}")
    if not isinstance(manifest.get("members"), dict) or not all(
            isinstance(v, dict) for v in manifest["members"].values()):
        raise BackupArchiveError(f"{path}: the manifest's member list is malformed")
    return manifest
