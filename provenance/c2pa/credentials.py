"""Trust anchors and signing credentials for C2PA, checked up front so a bad set-up fails with a clear message.

c2pa itself reports a wrong key or a misordered chain only when it signs, as a COSE error; we check what we can
with ``cryptography`` when the configuration is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from provenance.c2pa.errors import C2paConfigError

if TYPE_CHECKING:
    from provenance.config import Settings

# Signing algorithms c2pa supports, and the key each needs.
_EC_CURVES = {"es256": ec.SECP256R1, "es384": ec.SECP384R1, "es512": ec.SECP521R1}
SIGNING_ALGS = frozenset({*_EC_CURVES, "ps256", "ps384", "ps512", "ed25519"})


def parse_trust_anchors(pem: str) -> list[x509.Certificate]:
    """The certificates of a PEM bundle; :class:`C2paConfigError` unless it holds at least one."""
    try:
        certs = x509.load_pem_x509_certificates(pem.encode("utf-8"))
    except ValueError as exc:
        raise C2paConfigError(f"C2PA trust anchors are not a PEM certificate bundle: {exc}") from exc
    return certs


def load_trust_anchors(path: Path) -> str:
    """Read and check a PEM bundle of trust anchors (root certificates)."""
    pem = _read_text(path, "C2PA trust anchors")
    parse_trust_anchors(pem)
    return pem


def trust_anchors_from_settings(settings: Settings) -> str | None:
    """The configured trust-anchor bundle (``PROVENANCE_C2PA_TRUST_ANCHORS``), or None when unset."""
    return load_trust_anchors(settings.c2pa_trust_anchors) if settings.c2pa_trust_anchors else None


@dataclass(frozen=True)
class C2paSigningConfig:
    """A C2PA signing identity: PEM certificate chain (leaf first, root optional), its PEM private key, algorithm.

    Construction checks that the chain parses and is in order, that the leaf is within its validity period, that the
    key is of the algorithm's type and that it is the leaf's key; any failure is a :class:`C2paConfigError`.
    ``tsa_url`` (optional) is an RFC 3161 time-stamp authority; without one a manifest has no trusted signing time.
    """

    cert_chain_pem: bytes
    private_key_pem: bytes = field(repr=False)
    alg: str = "es256"
    tsa_url: str | None = None

    def __post_init__(self) -> None:
        alg = self.alg.lower()
        if alg not in SIGNING_ALGS:
            raise C2paConfigError(f"unknown C2PA signing algorithm {self.alg!r}; use one of {sorted(SIGNING_ALGS)}")
        object.__setattr__(self, "alg", alg)
        chain = _parse_chain(self.cert_chain_pem)
        key = _parse_key(self.private_key_pem)
        _check_key_type(key, alg)
        _check_key_matches_leaf(key, chain)
        _check_chain_order(chain)
        _check_leaf_validity(chain[0])

    @classmethod
    def from_files(
        cls, cert_chain: Path, private_key: Path, alg: str = "es256", tsa_url: str | None = None
    ) -> C2paSigningConfig:
        return cls(
            _read_bytes(cert_chain, "C2PA signing certificate chain"),
            _read_bytes(private_key, "C2PA signing key"),
            alg,
            tsa_url,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> C2paSigningConfig | None:
        """From ``PROVENANCE_C2PA_SIGNING_CERT`` / ``_KEY`` / ``_ALG``; None when neither file is set."""
        cert, key = settings.c2pa_signing_cert, settings.c2pa_signing_key
        if cert is None and key is None:
            return None
        if cert is None or key is None:
            missing = "PROVENANCE_C2PA_SIGNING_CERT" if cert is None else "PROVENANCE_C2PA_SIGNING_KEY"
            raise C2paConfigError(f"C2PA signing needs both a certificate chain and a key; {missing} is not set")
        return cls.from_files(cert, key, settings.c2pa_signing_alg)

    @property
    def leaf(self) -> x509.Certificate:
        return _parse_chain(self.cert_chain_pem)[0]


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise C2paConfigError(f"{what} not found: {path}") from exc
    except OSError as exc:
        raise C2paConfigError(f"{what} cannot be read: {path}: {exc.strerror or exc}") from exc


def _read_text(path: Path, what: str) -> str:
    try:
        return _read_bytes(path, what).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise C2paConfigError(f"{what} is not PEM text: {path}") from exc


def _parse_chain(pem: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise C2paConfigError(f"C2PA signing certificate chain is not PEM certificates: {exc}") from exc


def _parse_key(pem: bytes) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except TypeError as exc:  # encrypted key, no password
        raise C2paConfigError(f"C2PA signing key must be an unencrypted PEM private key: {exc}") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise C2paConfigError(f"C2PA signing key is not a PEM private key: {exc}") from exc


def _check_key_type(key: PrivateKeyTypes, alg: str) -> None:
    if alg in _EC_CURVES:
        ok = isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, _EC_CURVES[alg])
        needs = f"an EC {_EC_CURVES[alg].name} key"
    elif alg.startswith("ps"):
        ok, needs = isinstance(key, rsa.RSAPrivateKey), "an RSA key"
    else:
        ok, needs = isinstance(key, ed25519.Ed25519PrivateKey), "an Ed25519 key"
    if not ok:
        raise C2paConfigError(f"C2PA signing algorithm {alg} needs {needs}, not {type(key).__name__}")


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_key_matches_leaf(key: PrivateKeyTypes, chain: list[x509.Certificate]) -> None:
    mine = _spki(key.public_key())
    if mine == _spki(chain[0].public_key()):
        return
    for i, cert in enumerate(chain[1:], start=1):
        if mine == _spki(cert.public_key()):
            raise C2paConfigError(
                f"C2PA signing key belongs to certificate {i + 1} of the chain ({cert.subject.rfc4514_string()}); "
                "the chain must be leaf first"
            )
    raise C2paConfigError(
        f"C2PA signing key does not match the signing certificate ({chain[0].subject.rfc4514_string()})"
    )


def _check_chain_order(chain: list[x509.Certificate]) -> None:
    for i, (cert, issuer) in enumerate(zip(chain, chain[1:], strict=False), start=1):
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise C2paConfigError(
                f"C2PA certificate chain is broken or out of order: certificate {i} "
                f"({cert.subject.rfc4514_string()}) is not issued by certificate {i + 1} "
                f"({issuer.subject.rfc4514_string()}); list it leaf first"
            ) from exc


def _check_leaf_validity(leaf: x509.Certificate) -> None:
    now = datetime.now(timezone.utc)
    if now > leaf.not_valid_after_utc:
        raise C2paConfigError(f"C2PA signing certificate expired on {leaf.not_valid_after_utc.isoformat()}")
    if now < leaf.not_valid_before_utc:
        raise C2paConfigError(f"C2PA signing certificate is not valid before {leaf.not_valid_before_utc.isoformat()}")
