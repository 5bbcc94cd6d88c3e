"""Reading C2PA manifests (at ingest and at lookup) with c2pa-python.

A bad, unreadable or remote-only manifest is a finding about the image, not a failure of ours: :func:`read_c2pa`
never raises for what is in the bytes, it says so in the summary. It raises only for our own misconfiguration
(trust anchors that are not PEM certificates). Remote manifests are never fetched: the URL is reported instead
(fetching would let any uploaded image make the service call an address of its choosing).
"""

from __future__ import annotations

import io
import json
import os
import re
from functools import lru_cache
from typing import Any

import c2pa

from provenance.c2pa.credentials import parse_trust_anchors
from provenance.c2pa.errors import C2paManifestUnreadableError
from provenance.c2pa.formats import NO_MANIFEST_IMAGE_TYPES, sniff_media_type
from provenance.c2pa.summary import C2paSummary, summarise_store
from provenance.json_bounds import json_depth

_REMOTE_URL = re.compile(r"\burl\s+\(?(\S+?)\)?\s*$")
_MAX_ERROR_CHARS = 300
_MAX_STORE_DEPTH = 256  # assertions are publisher JSON; real stores nest a few dozen levels at most
_NOT_AN_IMAGE = "not an image format that can carry C2PA (unrecognised bytes and no media type given)"


def read_c2pa(data: bytes, mime: str | None = None, *, trust_anchors: str | None = None) -> C2paSummary:
    """Summarise the C2PA manifest store embedded in ``data``.

    ``mime`` defaults to the type sniffed from the bytes; bytes of no image format we know are an ``error``.
    ``trust_anchors`` is a PEM bundle of root certificates: a manifest whose signing chain ends in one of them
    validates as ``Trusted``; without it the best state is ``Valid`` (with ``signingCredential.untrusted`` among
    the failure codes).
    """
    fmt = mime or sniff_media_type(data)
    if fmt is None:
        return C2paSummary(status="error", error=_NOT_AN_IMAGE)
    if fmt in NO_MANIFEST_IMAGE_TYPES:
        return C2paSummary(status="absent", format=fmt)
    try:
        store = _read_store(data, fmt, trust_anchors)
    except c2pa.C2paError as exc:
        return _summarise_failure(exc, fmt)
    except ValueError as exc:  # c2pa's JSON could not be decoded: treat like any unreadable store
        return C2paSummary(status="error", format=fmt, error=_short(f"unreadable manifest store JSON: {exc}"))
    if store is None:
        return C2paSummary(status="absent", format=fmt)
    return summarise_store(store, asset_format=fmt)


def manifest_store_json(
    data: bytes, mime: str | None = None, *, trust_anchors: str | None = None
) -> dict[str, Any] | None:
    """The whole manifest store as c2pa reports it (manifests, validation results), for serving it as is.

    ``None`` when no manifest store is embedded (absent, or remote-only); :class:`C2paManifestUnreadableError`
    when one is there but cannot be read.
    """
    fmt = mime or sniff_media_type(data)
    if fmt is None:
        raise C2paManifestUnreadableError(_NOT_AN_IMAGE)
    if fmt in NO_MANIFEST_IMAGE_TYPES:
        return None
    try:
        return _read_store(data, fmt, trust_anchors)
    except c2pa.C2paError as exc:
        if _is_remote(exc):
            return None
        raise C2paManifestUnreadableError(_short(str(exc))) from exc
    except ValueError as exc:
        raise C2paManifestUnreadableError(_short(f"unreadable manifest store JSON: {exc}")) from exc


def _read_store(data: bytes, fmt: str | None, trust_anchors: str | None) -> dict[str, Any] | None:
    context = _reader_context(os.getpid(), trust_anchors)
    reader = c2pa.Reader.try_create(fmt, io.BytesIO(data), None, context)
    if reader is None:
        return None
    with reader:
        text = reader.json()
    # Manifests are untrusted: bound the nesting of c2pa's JSON before the recursive parser (json_bounds.py).
    if (depth := json_depth(text)) > _MAX_STORE_DEPTH:
        raise ValueError(f"manifest store JSON is nested {depth} levels deep (at most {_MAX_STORE_DEPTH})")
    store = json.loads(text)
    if not isinstance(store, dict):
        raise ValueError("manifest store is not a JSON object")
    return store


@lru_cache(maxsize=8)
def _reader_context(pid: int, trust_anchors: str | None) -> c2pa.Context:
    """One c2pa context per process and trust-anchor bundle.

    Per process because c2pa-python closes a forked child's copy of every native handle: a context made before
    a worker pool forks (Celery prefork) is dead in the workers.
    """
    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False, "verify_trust": True}}
    if trust_anchors:
        parse_trust_anchors(trust_anchors)  # a typo'd bundle must fail loudly, not read as "every image untrusted"
        settings["trust"] = {"trust_anchors": trust_anchors}
    return c2pa.Context.from_dict(settings)


def _is_remote(exc: c2pa.C2paError) -> bool:
    # c2pa 0.38 raises the base class with a "Remote: ..." message (its RemoteManifest subclass is not used for it).
    return isinstance(exc, c2pa.C2paError.RemoteManifest) or str(exc).startswith("Remote")


def _summarise_failure(exc: c2pa.C2paError, fmt: str | None) -> C2paSummary:
    message = str(exc)
    if _is_remote(exc):
        match = _REMOTE_URL.search(message)
        return C2paSummary(status="remote", format=fmt, remote_url=match.group(1) if match else None)
    if isinstance(exc, c2pa.C2paError.NotSupported):
        message = f"not an image format that can carry C2PA ({message})"
    return C2paSummary(status="error", format=fmt, error=_short(message))


def _short(message: str) -> str:
    message = " ".join(message.split())
    return message if len(message) <= _MAX_ERROR_CHARS else message[: _MAX_ERROR_CHARS - 3] + "..."
