"""Publisher keys on the publisher's side: Ed25519, PKCS#8 PEM (private, mode 0600) and SubjectPublicKeyInfo PEM."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from provenance.errors import InvalidInputError


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def write_key_pair(out: Path, key: Ed25519PrivateKey) -> Path:
    """Write ``out`` (private, PKCS#8 PEM, mode 0600, refused if it exists) and ``out.pub``; return the .pub path."""
    pub_path = out.with_name(out.name + ".pub")
    for path in (out, pub_path):
        if path.exists():
            raise InvalidInputError(f"{path} exists: refusing to overwrite a key")
    out.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    return pub_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidInputError(f"{path}: not a readable unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInputError(f"{path}: not an Ed25519 private key")
    return key


def parse_public_key(data: bytes, source: str = "public key") -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (SubjectPublicKeyInfo); refuses private keys outright, so a private key can
    never be sent to the service by mistake."""
    if b"PRIVATE KEY" in data:
        raise InvalidInputError(f"{source}: this is a PRIVATE key; give the public half (the .pub file)")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"{source}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInputError(f"{source}: not an Ed25519 public key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        return parse_public_key(path.read_bytes(), str(path))
    except OSError as exc:
        raise InvalidInputError(f"{path}: {exc}") from None
