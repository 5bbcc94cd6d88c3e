"""Local Ed25519 keyring: one PKCS#8 PEM file per key, readable by the owner only.

Publishers' signing keys live under ``keys/publishers/``; the log's checkpoint-signing key under ``keys/service/``
(with, after ``provenance chain rotate-anchorer``, the chain account's key).
In a deployment the publisher keeps its own key and the service only stores the public half (see ``RecordStore``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from provenance.errors import ConfigError, InvalidInputError, UnknownPublisherError

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def validate_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInputError(
            f"invalid name {name!r}: use 1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"
        )
    return name


class Keyring:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, kind: str, name: str) -> Path:
        return self.root / kind / f"{validate_name(name)}.ed25519.pem"

    def create_publisher_key(self, name: str) -> Ed25519PrivateKey:
        path = self._path("publishers", name)
        if path.exists():
            raise InvalidInputError(f"publisher {name!r} already has a key at {path}")
        key = Ed25519PrivateKey.generate()
        _write_private(path, key)
        return key

    def replace_publisher_key(self, name: str) -> Ed25519PrivateKey:
        """A new custodial key for ``name`` (a rotation); the old one is kept beside it as ``.rotated-<n>``."""
        path = self._path("publishers", name)
        if path.exists():
            n = 1
            while path.with_name(f"{path.name}.rotated-{n}").exists():
                n += 1
            path.rename(path.with_name(f"{path.name}.rotated-{n}"))
        key = Ed25519PrivateKey.generate()
        _write_private(path, key)
        return key

    def publisher_key(self, name: str) -> Ed25519PrivateKey:
        path = self._path("publishers", name)
        if not path.exists():
            raise UnknownPublisherError(f"no signing key for publisher {name!r} in {path.parent}")
        return _read_private(path)

    def has_service_key(self, name: str) -> bool:
        return self._path("service", name).exists()

    def service_key(self, name: str) -> Ed25519PrivateKey:
        """The log's checkpoint-signing key, created on first use."""
        path = self._path("service", name)
        if not path.exists():
            _write_private(path, Ed25519PrivateKey.generate())
        return _read_private(path)

    # --- rotation of the service's keys (docs/key-rotation.md) ---------------------------------------------------
    # A new key is first written beside the current one as ``<file>.next``; the rotation's log entry is committed;
    # then ``commit_*`` moves it into place (os.replace: the retired private key is gone in the same step). A crash
    # between the two leaves the pending file, and the log says which of the two keys is in force.
    def stage_service_key(self, name: str) -> Ed25519PrivateKey:
        """A new key for ``name``, written as the pending ``.next`` file (replacing any earlier pending one)."""
        key = Ed25519PrivateKey.generate()
        _write_private(self._pending(self._path("service", name)), key)
        return key

    def pending_service_key(self, name: str) -> Ed25519PrivateKey | None:
        path = self._pending(self._path("service", name))
        return _read_private(path) if path.exists() else None

    def commit_service_key(self, name: str) -> None:
        """The pending key becomes the key; the old private key is deleted (only its public half stays, in the log)."""
        path = self._path("service", name)
        try:
            os.replace(self._pending(path), path)
        except FileNotFoundError:
            return  # another process finished this rotation first
        _fsync_dir(path.parent)

    def anchorer_key(self) -> str | None:
        """The chain account key that a rotation installed (hex), or None: then PROVENANCE_CHAIN_PRIVATE_KEY."""
        path = self.root / "service" / ANCHORER_FILE
        return _read_secret(path) if path.exists() else None

    def pending_anchorer_key(self) -> str | None:
        path = self._pending(self.root / "service" / ANCHORER_FILE)
        return _read_secret(path) if path.exists() else None

    def stage_anchorer_key(self, hex_key: str) -> None:
        _write_secret(self._pending(self.root / "service" / ANCHORER_FILE), hex_key)

    def commit_anchorer_key(self) -> None:
        path = self.root / "service" / ANCHORER_FILE
        try:
            os.replace(self._pending(path), path)
        except FileNotFoundError:
            return
        _fsync_dir(path.parent)

    @staticmethod
    def _pending(path: Path) -> Path:
        return path.with_name(path.name + ".next")


ANCHORER_FILE = "chain-anchorer.hex"
"""Under ``keys/service/``: the anchoring account's private key, once ``provenance chain rotate-anchorer`` ran."""


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(text.strip() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_secret(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read key {path}: {exc}") from exc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_private(path: Path, key: Ed25519PrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 key")
    return key
