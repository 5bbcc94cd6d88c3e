"""Passphrase protection of a backup: scrypt derives two keys, one seals the keyring (AES-256-GCM), one
authenticates the manifest (HMAC-SHA256). Pure functions over bytes: no files, no prompts.

Why both: the keyring holds private keys and must stay secret; everything else in the archive (database, blocks)
is covered by the manifest's SHA-256 list, and the MAC over that list means an archive cannot be altered (a
record row swapped, a block replaced) without the passphrase, while a wrong passphrase is told apart from a
corrupt archive (the members match the manifest, but the manifest does not authenticate).

Parameters: scrypt N=2^17, r=8, p=1 (128 MiB, ~0.3 s here: the OWASP interactive recommendation), a 16-byte random
salt per archive, 64 bytes out: the first 32 are the AES key, the last 32 the MAC key. AES-GCM with a random 96-bit
nonce (one message per key, since every archive has its own salt) and a fixed associated-data label.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from provenance.errors import BackupArchiveError, BackupPassphraseError

__all__ = ["BackupKeys", "KDF_DEFAULTS", "derive_keys", "new_kdf_params", "open_sealed", "seal"]

KDF_DEFAULTS = {"name": "scrypt", "n": 2**17, "r": 8, "p": 1}
_KEYRING_AAD = b"provenance-backup/keyring/v1"
_NONCE_BYTES = 12
# Bounds on what an archive may ask for: a crafted manifest must not make restore burn memory or time.
_MAX_N = 2**18  # 256 MiB at r=8; provenance makes 2**17
_MIN_N = 2**14


@dataclass(frozen=True)
class BackupKeys:
    seal_key: bytes  # AES-256-GCM key of the keyring
    mac_key: bytes  # HMAC-SHA256 key of the manifest

    def mac(self, message: bytes) -> str:
        return hmac.new(self.mac_key, message, hashlib.sha256).hexdigest()

    def check_mac(self, message: bytes, tag: str) -> bool:
        return hmac.compare_digest(self.mac(message), tag)


def new_kdf_params() -> dict[str, Any]:
    return {**KDF_DEFAULTS, "salt": base64.b64encode(os.urandom(16)).decode("ascii")}


def derive_keys(passphrase: str, params: dict[str, Any]) -> BackupKeys:
    """The two keys for ``passphrase`` under the archive's KDF ``params`` (as :func:`new_kdf_params` made them)."""
    if not passphrase:
        raise BackupPassphraseError("the backup passphrase is empty")
    try:
        if params["name"] != "scrypt":
            raise BackupArchiveError(f"unknown key derivation {params['name']!r} in the manifest")
        n, r, p = int(params["n"]), int(params["r"]), int(params["p"])
        salt = base64.b64decode(params["salt"], validate=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise BackupArchiveError(f"the manifest's key derivation parameters are malformed: {exc}") from exc
    if not (_MIN_N <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= 16 and 1 <= p <= 4 and len(salt) >= 16):
        raise BackupArchiveError(f"the manifest asks for scrypt n={n}, r={r}, p={p}, salt of {len(salt)} bytes: "
                                 "outside what provenance makes")
    out = Scrypt(salt=salt, length=64, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))
    return BackupKeys(seal_key=out[:32], mac_key=out[32:])


def seal(keys: BackupKeys, plaintext: bytes) -> bytes:
    """``nonce || AES-256-GCM(plaintext)`` (the tag is the last 16 bytes)."""
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(keys.seal_key).encrypt(nonce, plaintext, _KEYRING_AAD)


def open_sealed(keys: BackupKeys, sealed: bytes) -> bytes:
    if len(sealed) < _NONCE_BYTES + 16:
        raise BackupArchiveError("the sealed keyring is truncated")
    try:
        return AESGCM(keys.seal_key).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], _KEYRING_AAD)
    except InvalidTag:
        raise BackupPassphraseError("the keyring does not decrypt with this passphrase") from None
