"""A throwaway C2PA signing PKI made at test time: root -> intermediate -> leaf, all EC P-256.

The leaf has KeyUsage digitalSignature (critical) and EKU emailProtection, which c2pa accepts for signing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provenance.c2pa import C2paSigningConfig

LEAF_ORG = "Acme Newsroom"
LEAF_CN = "Acme C2PA signer"


def pem_of_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def pem_of_key(key: PrivateKeyTypes, password: bytes | None = None) -> bytes:
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def issue(
    subject: str,
    org: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    not_after: datetime | None = None,
) -> x509.Certificate:
    """One certificate; ``issuer=None`` makes it self-signed (a root)."""
    now = datetime.now(timezone.utc)
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, subject), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=2))
        .not_valid_after(not_after or now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)  # keyCertSign, cRLSign
        builder = builder.add_extension(usage, critical=True)
    else:
        usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)  # digitalSignature
        builder = builder.add_extension(usage, critical=True)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class TestPki:
    root: x509.Certificate
    intermediate: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey
    leaf: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey

    __test__ = False  # not a test class, whatever pytest thinks of the name

    @property
    def root_pem(self) -> str:
        return pem_of_cert(self.root).decode()

    @property
    def chain_pem(self) -> bytes:
        return pem_of_cert(self.leaf) + pem_of_cert(self.intermediate)

    @property
    def key_pem(self) -> bytes:
        return pem_of_key(self.leaf_key)

    def config(self) -> C2paSigningConfig:
        return C2paSigningConfig(self.chain_pem, self.key_pem, "es256")

    def write(self, directory: Path) -> dict[str, Path]:
        """The PEM files an operator would configure: trust anchors, chain (leaf first), key."""
        files = {"anchors": directory / "anchors.pem", "chain": directory / "chain.pem", "key": directory / "key.pem"}
        files["anchors"].write_text(self.root_pem)
        files["chain"].write_bytes(self.chain_pem)
        files["key"].write_bytes(self.key_pem)
        return files


def make_pki(*, leaf_not_after: datetime | None = None) -> TestPki:
    root_key, inter_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = issue("Test C2PA Root", "Test Root CA", root_key, None, root_key, ca=True)
    inter = issue("Test C2PA Intermediate", "Test Intermediate CA", inter_key, root, root_key, ca=True)
    leaf = issue(LEAF_CN, LEAF_ORG, leaf_key, inter, inter_key, ca=False, not_after=leaf_not_after)
    return TestPki(root, inter, inter_key, leaf, leaf_key)
