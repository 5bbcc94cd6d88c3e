"""C2PA adapter: read an image's Content Credentials into a record-ready summary, and sign copies that carry our hash.

``read_c2pa`` (ingest, lookup) and ``manifest_store_json`` (serving a manifest store) never fetch anything; a bad
manifest is reported in the summary, not raised. ``sign_with_soft_binding`` emits a signed copy whose active
manifest holds a ``c2pa.soft-binding`` assertion with our perceptual hash. ``c2pa-python`` (about 0.1 s to import)
is loaded on first use of a function that needs it, so importing the types is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from provenance.c2pa.credentials import (
    SIGNING_ALGS,
    C2paSigningConfig,
    load_trust_anchors,
    trust_anchors_from_settings,
)
from provenance.c2pa.errors import (
    C2paConfigError,
    C2paError,
    C2paManifestUnreadableError,
    C2paSigningError,
    C2paUnsupportedMediaError,
)
from provenance.c2pa.formats import sniff_media_type
from provenance.c2pa.summary import (
    PROOF_BUNDLE_ASSERTION_LABEL,
    RECORD_ASSERTION_LABEL,
    SOFT_BINDING_LABEL,
    C2paSummary,
    Ingredient,
    SoftBinding,
)

if TYPE_CHECKING:
    from provenance.c2pa.reader import manifest_store_json, read_c2pa
    from provenance.c2pa.signing import sign_with_soft_binding

__all__ = [
    "PROOF_BUNDLE_ASSERTION_LABEL",
    "RECORD_ASSERTION_LABEL",
    "SIGNING_ALGS",
    "SOFT_BINDING_LABEL",
    "C2paConfigError",
    "C2paError",
    "C2paManifestUnreadableError",
    "C2paSigningConfig",
    "C2paSigningError",
    "C2paSummary",
    "C2paUnsupportedMediaError",
    "Ingredient",
    "SoftBinding",
    "load_trust_anchors",
    "manifest_store_json",
    "read_c2pa",
    "sign_with_soft_binding",
    "sniff_media_type",
    "trust_anchors_from_settings",
]

_LAZY = {
    "read_c2pa": "provenance.c2pa.reader",
    "manifest_store_json": "provenance.c2pa.reader",
    "sign_with_soft_binding": "provenance.c2pa.signing",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
