"""Block store over an IPFS daemon's RPC HTTP API (Kubo, or js-ipfs in tests), as a thin httpx client.

Why a thin client: ``ipfshttpclient`` 0.7 (the last release, 2021, unmaintained) refuses every daemon >= 0.8 in
``connect()``, and we need only five endpoints that Kubo and js-ipfs both serve: ``add``, ``cat``, ``pin/add``,
``pin/ls`` and ``block/stat`` (plus ``id`` for health). Every call is a POST, as Kubo requires.

Trust: the daemon is not trusted with content addressing. ``put`` checks that the CID it returns equals
:func:`provenance.cid.cid_for_bytes` of the bytes sent, and ``get`` re-hashes what ``cat`` returns.

Missing content: a daemon asked for a CID it lacks goes looking on the network, possibly forever. Local checks
therefore pass ``offline=true`` (Kubo answers at once; js-ipfs ignores unknown options) and a short daemon-side
``timeout`` (both honour it), and ``get`` checks presence that way before ``cat``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from provenance.cid import canonical_cid, cid_for_bytes, parse_cid
from provenance.errors import (
    BlockNotFoundError,
    BlockStoreError,
    BlockStoreUnavailableError,
    IntegrityError,
    InvalidCIDError,
)

_ADD_PARAMS = {
    "cid-version": "1",
    "raw-leaves": "true",
    "cid-base": "base32",
    "chunker": "size-262144",
    "hash": "sha2-256",
    "pin": "true",
    "progress": "false",
}
# Daemon error texts that mean "not here" (Kubo offline / js-ipfs timeout / either's pin ls).
_ABSENT_MARKERS = ("not found", "could not find", "timed out", "not pinned", "no link named")


class IpfsRpcBlockStore:
    """Stores content in (and pins it on) the IPFS daemon whose RPC API is at ``api_url``."""

    def __init__(
        self,
        api_url: str,
        timeout_s: float = 30.0,
        *,
        local_probe_s: float = 1.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``local_probe_s``: how long a daemon that cannot answer "absent" at once (js-ipfs) may look for a CID
        before we call it missing. ``transport``: for tests (e.g. ``httpx.MockTransport``)."""
        self.api_url = api_url.rstrip("/")
        self.local_probe_s = local_probe_s
        self._client = httpx.Client(base_url=f"{self.api_url}/api/v0", timeout=timeout_s, transport=transport)

    # --- transport ---------------------------------------------------------------------------------------------------
    def _post(self, endpoint: str, params: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        """POST and translate transport failures; returns the response whatever its status."""
        try:
            return self._client.post(f"/{endpoint}", params=params, **kwargs)
        except (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError) as exc:
            # NetworkError: refused, and also reset or cut mid-request (a daemon killed or stopping meanwhile)
            raise BlockStoreUnavailableError(
                f"IPFS daemon unreachable at {self.api_url}: {type(exc).__name__}: {exc}", where=self.api_url
            ) from exc
        except httpx.HTTPError as exc:
            raise BlockStoreError(f"IPFS RPC {endpoint} failed at {self.api_url}: {exc}") from exc

    @staticmethod
    def _message(response: httpx.Response) -> str:
        try:
            return str(response.json().get("Message", response.text))
        except (ValueError, AttributeError):
            return response.text[:500]

    def _fail(self, endpoint: str, response: httpx.Response) -> BlockStoreError:
        message = f"IPFS RPC {endpoint} at {self.api_url} answered {response.status_code}: {self._message(response)}"
        if response.status_code >= 500:
            # The daemon cannot serve now (shutting down: js-ipfs answers "Database is not open"; its disk full;
            # overloaded): unavailable, so uploads get 503 naming it and workers retry, as when it is unreachable.
            return BlockStoreUnavailableError(message, where=self.api_url)
        return BlockStoreError(message)

    def _is_absent(self, response: httpx.Response) -> bool:
        return response.status_code == 500 and any(m in self._message(response).lower() for m in _ABSENT_MARKERS)

    # --- BlockStore -------------------------------------------------------------------------------------------------
    def put(self, data: bytes) -> str:
        expected = cid_for_bytes(data)
        files = {"file": ("blob", data, "application/octet-stream")}  # js-ipfs needs the part's content-type
        response = self._post("add", _ADD_PARAMS, files=files)
        if response.status_code != 200:
            raise self._fail("add", response)
        lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
        hashes = [entry["Hash"] for entry in lines if isinstance(entry, dict) and "Hash" in entry]
        if not hashes:
            raise BlockStoreError(f"IPFS add at {self.api_url} returned no CID: {response.text[:200]!r}")
        got = hashes[-1]
        try:
            got_canonical = canonical_cid(got)
        except InvalidCIDError as exc:
            raise BlockStoreError(f"IPFS add at {self.api_url} returned a non-CID {got!r}") from exc
        if got_canonical != expected:
            raise IntegrityError(
                f"IPFS daemon at {self.api_url} stored {len(data)} bytes as {got}, expected {expected}"
            )
        return expected

    def get(self, cid: str) -> bytes:
        canonical = canonical_cid(cid)  # InvalidCIDError before any request
        if not self.has(canonical):
            raise BlockNotFoundError(f"{canonical} is not stored on the IPFS daemon at {self.api_url}")
        response = self._post("cat", {"arg": canonical, "offline": "true"})
        if self._is_absent(response):
            raise BlockNotFoundError(f"{canonical} is not (fully) stored on the IPFS daemon at {self.api_url}")
        if response.status_code != 200:
            raise self._fail("cat", response)
        data = response.content
        if cid_for_bytes(data) != canonical:
            raise IntegrityError(f"IPFS daemon at {self.api_url} returned bytes that do not hash to {canonical}")
        return data

    def has(self, cid: str) -> bool:
        canonical = canonical_cid(cid)
        if self.is_pinned(canonical):  # local on both daemons, and the common case here
            return True
        params = {"arg": canonical, "offline": "true", "timeout": f"{self.local_probe_s:g}s"}
        response = self._post("block/stat", params)
        if response.status_code == 200:
            return True
        if self._is_absent(response):
            return False
        raise self._fail("block/stat", response)

    def is_pinned(self, cid: str) -> bool:
        canonical = canonical_cid(cid)
        params = {"arg": canonical, "type": "recursive", "offline": "true", "timeout": f"{self.local_probe_s:g}s"}
        response = self._post("pin/ls", params)
        if self._is_absent(response):
            return False
        if response.status_code != 200:
            raise self._fail("pin/ls", response)
        keys = response.json().get("Keys") or {}
        target = parse_cid(canonical)
        return any(parse_cid(k).to_bytes() == target.to_bytes() for k in keys)

    def pin(self, cid: str) -> None:
        """Pin content already on the daemon (e.g. after ``dag import`` with pinning off)."""
        canonical = canonical_cid(cid)
        response = self._post("pin/add", {"arg": canonical, "recursive": "true"})
        if response.status_code != 200:
            raise self._fail("pin/add", response)

    def ping(self) -> str:
        """Health check: the daemon's agent version (``/api/v0/id``)."""
        response = self._post("id")
        if response.status_code != 200:
            raise self._fail("id", response)
        return str(response.json().get("AgentVersion", "unknown"))

    def describe(self) -> str:
        return f"ipfs:{self.api_url}"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> IpfsRpcBlockStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
