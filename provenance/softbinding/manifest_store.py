"""The C2PA manifest store we serve for a record (``GET /manifests/{manifestId}``, ``application/c2pa``).

A manifest we sign ourselves (``PROVENANCE_C2PA_SIGNING_CERT`` / ``_KEY``), labelled
:func:`~provenance.softbinding.manifest_ids.manifest_id_for` the record, bound (hard binding) to the registered
original, holding:

* one ``c2pa.soft-binding`` assertion per perceptual hash of the record, under its list name
  (:mod:`provenance.softbinding.algorithms`), value in base64 as the resolution API carries it, the model id as
  ``alg-params``;
* ``org.provenance-service.record``: the record CID;
* ``org.provenance-service.proof-bundle``: the record's offline proof bundle (docs/bundles.md) by sha256, tree size
  and URL, once a checkpoint covers the record.

The publisher's own manifest, when the original carried one, is its parent ingredient, so the store holds it too.
Signing takes a few milliseconds; stores are kept in a small in-process cache keyed by record and proof bundle
(the store changes when a newer checkpoint gives a newer bundle). Without a signing certificate there is no store
to serve: :meth:`ManifestStores.store_for` returns None and the route says so (docs/c2pa-softbinding.md).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from provenance.c2pa.credentials import C2paSigningConfig
from provenance.errors import BundleError
from provenance.ledger import Ledger
from provenance.logging import get_logger
from provenance.records import parse_record
from provenance.records_store import StoredRecord
from provenance.softbinding.algorithms import binding_value, registered_name
from provenance.softbinding.manifest_ids import manifest_id_for

__all__ = ["ManifestStores", "manifest_stores_for"]

log = get_logger(__name__)
CACHE_SIZE = 256
_ATTACH = threading.Lock()


class ManifestStores:
    """Signs and caches the manifest stores of one ledger's records (thread-safe)."""

    def __init__(self, ledger: Ledger, signer: C2paSigningConfig | None, *, base_url: str = "",
                 cache_size: int = CACHE_SIZE) -> None:
        self._ledger = ledger
        self._signer = signer
        self._base_url = base_url
        self._cache: OrderedDict[tuple[str, str | None], bytes] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @property
    def can_sign(self) -> bool:
        return self._signer is not None

    def store_for(self, stored: StoredRecord) -> bytes | None:
        """The ``application/c2pa`` bytes for ``stored``; None when no signing certificate is configured."""
        if self._signer is None:
            return None
        proof = self._proof_reference(stored.cid)
        key = (stored.cid, None if proof is None else str(proof["sha256"]))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        from provenance.c2pa.signing import sign_manifest_store

        record = parse_record(stored.record_bytes).record
        bindings = [(registered_name(h.alg, h.model_id), binding_value(h.value), h.model_id) for h in record.hashes]
        data = sign_manifest_store(self._ledger.blockstore.get(stored.image_cid), record.media_type,
                                   label=manifest_id_for(stored.cid), bindings=bindings, record_cid=stored.cid,
                                   title=record.metadata.title, signer=self._signer, proof_bundle=proof)
        with self._lock:
            self._cache[key] = data
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        log.info("c2pa.manifest_store.signed", record=stored.cid, bytes=len(data), proof=proof is not None)
        return data

    def _proof_reference(self, cid: str) -> dict[str, Any] | None:
        """``{record_cid, tree_size, sha256, url}`` of the record's bundle in the latest checkpoint, or None when no
        checkpoint covers it yet."""
        from provenance.bundle import bundle_url
        from provenance.bundle.build import build_bundle
        from provenance.translog.checkpoint import parse_checkpoint_note

        try:
            bundle = build_bundle(self._ledger, cid)
        except BundleError:
            return None
        if bundle is None:
            return None
        size = parse_checkpoint_note(bundle.checkpoint)[0].size
        return {"record_cid": cid, "tree_size": size, "sha256": bundle.sha256,
                "url": bundle_url(cid, size, self._base_url)}


def manifest_stores_for(service: Any, settings: Any) -> ManifestStores:
    """The service's :class:`ManifestStores` (``service.manifest_stores``), made on first use from settings."""
    stores = getattr(service, "manifest_stores", None)
    if stores is None:
        with _ATTACH:
            stores = getattr(service, "manifest_stores", None)
            if stores is None:
                signer = C2paSigningConfig.from_settings(settings)
                endpoints = settings.softbinding_endpoint_list
                stores = ManifestStores(service.ledger, signer, base_url=endpoints[0] if endpoints else "")
                service.manifest_stores = stores
    return stores
