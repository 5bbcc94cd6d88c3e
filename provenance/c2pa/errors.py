"""Errors of the C2PA adapter, in the package's one tree (:mod:`provenance.errors`).

``c2pa-python`` exceptions never leave this package: reading summarises them (a bad manifest is a finding, not a
failure), signing translates them into these.
"""

from __future__ import annotations

from provenance.errors import ConfigError, InvalidImageError, ProvenanceError


class C2paError(ProvenanceError):
    """Base of every error raised on purpose by :mod:`provenance.c2pa`."""


class C2paConfigError(C2paError, ConfigError):
    """Trust anchors or signing credentials are missing, unreadable or inconsistent (e.g. key does not match cert)."""


class C2paSigningError(C2paError):
    """c2pa refused to sign (its message is kept); nothing was produced."""


class C2paUnsupportedMediaError(C2paSigningError, InvalidImageError):
    """The bytes are not an image format that can carry an embedded C2PA manifest."""


class C2paManifestUnreadableError(C2paError):
    """A manifest store is present but cannot be read (malformed, unsupported algorithm, pre-1.0 ...)."""


class FederatedLookupError(C2paError):
    """A federated-lookup contract's description or events do not follow the specification's schema."""
