"""Signed lookup receipts (pure: model, sign, verify; no I/O). See docs/receipts.md.

Issuing them (the searchable checkpoint, storage, the lookup wiring) is ``provenance.lookup_receipts``.
"""

from provenance.receipts.model import (
    MAX_RECEIPT_BYTES,
    NO_MATCH,
    RECEIPT_SCHEMA,
    SIGNING_DOMAIN,
    LookupReceipt,
    QueryCode,
    ReceiptCandidate,
    ReceiptCheckpoint,
    ServiceKeyRef,
    SignedReceipt,
)
from provenance.receipts.signing import service_key_ref, sign_receipt, verify_receipt

__all__ = ["MAX_RECEIPT_BYTES", "NO_MATCH", "RECEIPT_SCHEMA", "SIGNING_DOMAIN", "LookupReceipt", "QueryCode",
           "ReceiptCandidate", "ReceiptCheckpoint", "ServiceKeyRef", "SignedReceipt", "service_key_ref",
           "sign_receipt", "verify_receipt"]
