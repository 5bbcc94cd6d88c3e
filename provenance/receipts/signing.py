"""Signing and verifying lookup receipts with the log's Ed25519 service key. Pure: keys and bytes in, no I/O.

The verifier key a user is given is the log's signed-note verifier key, ``<name>+<hex key ID>+<base64(0x01 ||
public key)>``: the string ``provenance log key`` prints and ``records proof`` returns as ``verifier_key``. So one
published key checks both the log's checkpoints and its receipts; the signing domains keep the two apart (a
checkpoint note is signed as text, a receipt as ``"provenance-receipt-v1\\n" || JCS(receipt)``).
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from provenance.errors import CheckpointError, ReceiptError
from provenance.receipts.model import LookupReceipt, ServiceKeyRef, SignedReceipt
from provenance.translog.checkpoint import VerifierKey, key_id, parse_verifier_key

__all__ = ["service_key_ref", "sign_receipt", "verify_receipt"]


def service_key_ref(key_name: str, private_key: Ed25519PrivateKey) -> ServiceKeyRef:
    """The ``service`` field of receipts signed by this key under this signed-note name."""
    return ServiceKeyRef(key_name, key_id(key_name, private_key.public_key()).hex())


def sign_receipt(receipt: LookupReceipt, private_key: Ed25519PrivateKey) -> SignedReceipt:
    """Sign ``receipt``; its ``service`` field must name this key (else the receipt could never verify)."""
    expected = service_key_ref(receipt.service.name, private_key)
    if expected.key_id != receipt.service.key_id:
        raise ReceiptError(f"receipt names key {receipt.service.name}+{receipt.service.key_id} but is being signed "
                           f"with {expected.name}+{expected.key_id}", check="key_mismatch")
    return SignedReceipt(receipt, private_key.sign(receipt.signing_bytes()))


def _verifier(key: VerifierKey | str) -> VerifierKey:
    if isinstance(key, VerifierKey):
        return key
    if not isinstance(key, str):
        raise ReceiptError(f"service key must be a verifier key string, got {type(key).__name__}", check="service_key")
    try:
        return parse_verifier_key(key.strip())
    except CheckpointError as exc:
        raise ReceiptError(f"service key is not a signed-note verifier key (<name>+<hex8>+<base64>): {exc}",
                           check="service_key") from None


def verify_receipt(receipt: SignedReceipt | bytes | str, service_key: VerifierKey | str) -> LookupReceipt:
    """Check a receipt (object, or its JSON bytes/text) against the service's verifier key; return what it says.

    Raises :class:`ReceiptError` whose ``check`` names what failed: ``json`` or ``field:<path>`` (malformed),
    ``service_key`` (the key given is not a verifier key), ``key_mismatch`` (the receipt names another key),
    ``signature`` (altered after signing, or signed by another key of the same name and ID).
    """
    signed = receipt if isinstance(receipt, SignedReceipt) else SignedReceipt.from_bytes(receipt)
    vk = _verifier(service_key)
    named = signed.receipt.service
    if (named.name, named.key_id) != (vk.name, vk.key_id.hex()):
        raise ReceiptError(f"receipt was signed by key {named.name}+{named.key_id}, not by the given key "
                           f"{vk.name}+{vk.key_id.hex()}", check="key_mismatch")
    try:
        vk.public_key.verify(signed.signature, signed.receipt.signing_bytes())
    except InvalidSignature:
        raise ReceiptError(f"signature does not verify under {vk.name}+{vk.key_id.hex()}: the receipt was changed "
                           "after it was signed, or signed by another key", check="signature") from None
    return signed.receipt
