"""Issuing signed lookup receipts: the one place where the CLI's ``lookup``, ``POST /v1/lookup`` and
``POST /matches/byContent`` get theirs (docs/receipts.md).

:func:`answer_with_receipt` runs an answer (a lookup) between the two halves of a receipt: first the checkpoint the
index reflects (:class:`provenance.index.coverage.SearchableCheckpoint`, taken *before* the search, so everything
in it was searchable when the search ran), then the answer, then the receipt itself, signed with the log's service
key and kept in the database for its permalink. The receipt model and its signature are pure
(:mod:`provenance.receipts`); this module is the I/O around them.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from provenance.config import Settings
from provenance.index.coverage import SearchableCheckpoint
from provenance.ledger import Ledger
from provenance.logging import get_logger
from provenance.receipts import (
    LookupReceipt,
    QueryCode,
    ReceiptCandidate,
    ReceiptCheckpoint,
    SignedReceipt,
    service_key_ref,
    sign_receipt,
)
from provenance.receipts_store import ReceiptStore
from provenance.translog import EMPTY_ROOT, encode_verifier_key

__all__ = ["ReceiptIssuer", "answer_with_receipt", "issuer_for", "lookup_with_receipt", "receipt_candidates",
           "receipt_codes", "stored_receipt"]

log = get_logger(__name__)

PRUNE_EVERY_S = 60.0
_ATTACH = threading.Lock()


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- from a lookup's answer to the receipt's fields (pure) -----------------------------------------------------------
def receipt_codes(answer: Mapping[str, Any], models: Mapping[str, str]) -> tuple[QueryCode, ...]:
    """Every channel's code of the query (``answer["hashes"]``: alg -> hex), with the model id of the hasher that
    made it (``models``: alg -> model id; the answer's own ``model`` names the sensitive channel's)."""
    hashes: Mapping[str, str] = answer.get("hashes") or {}
    out = []
    for alg, value in sorted(hashes.items()):
        model = models.get(alg)
        if value == answer.get("hash") and answer.get("model"):
            model = str(answer["model"])
        out.append(QueryCode(alg, model or "unknown", 4 * len(value), value))
    return tuple(out)


def receipt_candidates(answer: Mapping[str, Any]) -> tuple[ReceiptCandidate, ...]:
    """Each candidate's CID and its distance to the query on every channel with a query code: from ``distances``
    when the answer gives them per channel, else from the lookup's ``distance`` (the sensitive channel, the one
    whose code is ``answer["hash"]``) and ``tolerant_distances``."""
    hashes: Mapping[str, str] = answer.get("hashes") or {}
    sensitive = next((alg for alg, v in sorted(hashes.items()) if v == answer.get("hash")), None)
    seen: dict[str, ReceiptCandidate] = {}
    for c in answer.get("candidates") or ():
        cid = c.get("record_cid")
        if not isinstance(cid, str) or cid in seen:
            continue
        if "distances" in c:
            raw = dict(c["distances"])
        else:
            raw = dict(c.get("tolerant_distances") or {})
            if sensitive is not None and c.get("distance") is not None:
                raw[sensitive] = c["distance"]
        distances = {alg: int(d) for alg, d in raw.items() if alg in hashes and d is not None}
        seen[cid] = ReceiptCandidate(cid, distances)
    return tuple(seen[cid] for cid in sorted(seen))


# --- the issuer ---------------------------------------------------------------------------------------------------
class ReceiptIssuer:
    """Signs, stores and serves the receipts of one service (one per process; thread-safe)."""

    def __init__(self, ledger: Ledger, index: Any = None, *, retention: timedelta = timedelta(days=365),
                 max_count: int = 1_000_000, models: Callable[[], Mapping[str, str]] | None = None) -> None:
        self._engine = ledger.engine
        self._reader = ledger.reader
        self._origin = ledger.config.origin
        self._ledger = ledger  # the log key is read at each receipt: a rotation takes effect without a restart
        self._key_name = ledger.config.log_key_name
        self._models = models or (lambda: {h.alg: str(h.model_id) for h in ledger.hashers})
        self._coverage = SearchableCheckpoint(ledger.engine, index)
        self._store = ReceiptStore()
        self._retention = retention
        self._max_count = max_count
        self._pruned_at = float("-inf")
        self._prune_lock = threading.Lock()

    @classmethod
    def for_service(cls, service: Any, settings: Settings) -> ReceiptIssuer:
        lookup = service.lookup
        hashers = getattr(lookup, "hashers", None) or service.ledger.hashers
        return cls(service.ledger, getattr(lookup, "index", None),
                   retention=timedelta(days=settings.receipt_retention_days), max_count=settings.receipt_max_count,
                   models=lambda: {h.alg: str(h.model_id) for h in hashers})

    @property
    def verifier_key(self) -> str:
        """The log's signed-note verifier key: what ``verify-receipt --service-key`` takes."""
        return encode_verifier_key(self._key_name, self._ledger.log_signing_key().public_key())

    def searchable_checkpoint(self) -> ReceiptCheckpoint:
        """The checkpoint every record of which the index can search now; the empty tree when there is none."""
        cp = self._coverage.current()
        if cp is None:
            return ReceiptCheckpoint(self._origin, 0, EMPTY_ROOT)
        return ReceiptCheckpoint(self._origin, cp.tree_size, cp.root)

    def issue(self, data: bytes, answer: Mapping[str, Any], checkpoint: ReceiptCheckpoint) -> SignedReceipt:
        """Sign the receipt of ``answer`` (a lookup's ``to_obj()``, or any dict with its keys) for the query ``data``
        searched against ``checkpoint``, and keep it for its permalink."""
        issued = _utc_now()
        record_cid = answer.get("record_cid")
        key = self._ledger.log_signing_key()
        receipt = LookupReceipt(
            receipt_id=secrets.token_hex(16),
            issued_at=_rfc3339(issued),
            service=service_key_ref(self._key_name, key),
            query_sha256=hashlib.sha256(data).hexdigest(),
            codes=receipt_codes(answer, self._models()),
            verdict=str(answer["verdict"]),
            record_cid=record_cid if isinstance(record_cid, str) else None,
            candidates=receipt_candidates(answer),
            checkpoint=checkpoint,
        )
        signed = sign_receipt(receipt, key)
        with self._engine.begin() as conn:
            self._store.put(conn, receipt.receipt_id, issued, receipt.verdict, signed.to_bytes())
        self._maybe_prune(issued)
        return signed

    def get(self, receipt_id: str) -> bytes | None:
        """The stored bytes of a receipt, or None (unknown, malformed id, or pruned)."""
        if not (isinstance(receipt_id, str) and len(receipt_id) == 32
                and all(ch in "0123456789abcdef" for ch in receipt_id)):
            return None
        with self._reader.connect() as conn:
            return self._store.get(conn, receipt_id)

    def _maybe_prune(self, now: datetime) -> None:
        mono = time.monotonic()
        if mono - self._pruned_at < PRUNE_EVERY_S or not self._prune_lock.acquire(blocking=False):
            return
        try:
            self._pruned_at = mono
            with self._engine.begin() as conn:
                deleted = self._store.prune(conn, older_than=now - self._retention, keep_at_most=self._max_count)
            if deleted:
                log.info("receipts.pruned", deleted=deleted)
        finally:
            self._prune_lock.release()


# --- wiring -------------------------------------------------------------------------------------------------------
def issuer_for(service: Any, settings: Settings) -> ReceiptIssuer:
    """The service's issuer (``service.receipts``), attached on first use."""
    issuer = getattr(service, "receipts", None)
    if issuer is None:
        with _ATTACH:
            issuer = getattr(service, "receipts", None)
            if issuer is None:
                issuer = ReceiptIssuer.for_service(service, settings)
                service.receipts = issuer
    return issuer


def answer_with_receipt(service: Any, settings: Settings, data: bytes,
                        answer: Callable[[], Mapping[str, Any]]) -> tuple[dict[str, Any], SignedReceipt]:
    """Run ``answer()`` (a search over the index for the query ``data``) and return its dict with the signed
    receipt under ``"receipt"``, and the receipt."""
    issuer = issuer_for(service, settings)
    checkpoint = issuer.searchable_checkpoint()  # before the search: it held at least this
    out = dict(answer())
    signed = issuer.issue(data, out, checkpoint)
    out["receipt"] = signed.to_obj()
    if "verdict" in out:  # a lookup (not a soft-binding match list): say if these exact bytes were withdrawn
        out["withdrawn"] = service.ledger.withdrawn_records_of(data)
        if out["withdrawn"] and out["verdict"] == "no_match":
            w = out["withdrawn"][0]
            out["explanation"] = (f"{out.get('explanation') or 'no match'}; these exact bytes were registered by "
                                  f"{w['publisher']!r} as record {w['record_cid']} and withdrawn at "
                                  f"{w['withdrawn_at']}")
    log.info("receipt.issued", receipt=signed.receipt_id, verdict=signed.receipt.verdict,
             checkpoint=checkpoint.size)
    return out, signed


def lookup_with_receipt(service: Any, settings: Settings, data: bytes,
                        **lookup_kwargs: Any) -> tuple[dict[str, Any], SignedReceipt]:
    """``service.lookup.lookup(data, **lookup_kwargs)`` with its receipt: the verdict's JSON keys plus ``receipt``."""
    return answer_with_receipt(service, settings, data, lambda: service.lookup.lookup(data, **lookup_kwargs).to_obj())


def stored_receipt(service: Any, settings: Settings, receipt_id: str) -> bytes | None:
    return issuer_for(service, settings).get(receipt_id)
