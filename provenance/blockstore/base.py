"""The block store interface: content in, CID out, and nothing comes back that does not hash to its CID.

Both implementations (an embedded directory and an IPFS daemon) give the same CID for the same bytes
(:func:`provenance.cid.cid_for_bytes`), so records written against one stay valid against the other.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class BlockStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent; pinned where pinning exists) and return its CIDv1."""
        ...

    def get(self, cid: str) -> bytes:
        """The content stored under ``cid``, verified against it.

        Raises InvalidCIDError (not a CID), BlockNotFoundError (not stored), IntegrityError (bytes do not hash to it).
        """
        ...

    def has(self, cid: str) -> bool:
        """Whether the content is available here without asking anyone else."""
        ...

    def is_pinned(self, cid: str) -> bool:
        """Whether the content is protected from garbage collection."""
        ...

    def describe(self) -> str:
        """Where the blocks live, for logs and ``provenance doctor`` (e.g. ``local:/abs/path``)."""
        ...

    def close(self) -> None:
        """Release connections / handles."""
        ...
