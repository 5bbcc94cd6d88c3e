"""The one error tree of the ``provenance`` package.

Adapters translate third-party exceptions into these at their boundary, so callers (CLI, HTTP API, workers)
only ever catch ``ProvenanceError`` subclasses and can map each to an exit code or status code in one place.
"""

from __future__ import annotations


class ProvenanceError(Exception):
    """Base of every error raised on purpose by this package."""


class ConfigError(ProvenanceError):
    """Configuration is missing or inconsistent."""


# --- input -------------------------------------------------------------------------------------------------------
class InvalidInputError(ProvenanceError):
    """The caller gave us something we cannot accept (nothing has been written)."""


class InvalidImageError(InvalidInputError):
    """The bytes are not a decodable image, or exceed the configured limits."""


class InvalidRecordError(InvalidInputError):
    """A record does not match the schema or its canonical form."""


class UnknownPublisherError(InvalidInputError):
    """No publisher of that name or key id is registered."""


class SignatureError(InvalidInputError):
    """A signature does not verify under the claimed key."""


# --- content addressing / block stores -------------------------------------------------------------------------
class BlockStoreError(ProvenanceError):
    """A block store operation failed."""


class BlockNotFoundError(BlockStoreError):
    """No content is stored under that CID."""


class BlockStoreUnavailableError(BlockStoreError):
    """The block store backend (e.g. the IPFS daemon) cannot be reached; ``where`` names the endpoint."""

    def __init__(self, message: str, *, where: str) -> None:
        super().__init__(message if where in message else f"{message} (at {where})")
        self.where = where


class IntegrityError(BlockStoreError):
    """Content does not hash to the CID it is stored or returned under."""


class InvalidCIDError(InvalidInputError):
    """A string or byte sequence is not a CID we understand."""


# --- transparency log --------------------------------------------------------------------------------------------
class LogError(ProvenanceError):
    """Transparency log failure."""


class ProofError(LogError):
    """Base for proof verification failures (each subclass names one way a proof can be wrong)."""


class ProofShapeError(ProofError):
    """The proof has the wrong number of hashes for the claimed index/size."""


class IndexOutOfRangeError(ProofError):
    """A leaf index is not below the tree size, or sizes are not ordered."""


class RootMismatchError(ProofError):
    """The proof recomputes to a different root than claimed."""


class CheckpointError(LogError):
    """A checkpoint note is malformed, or its signature does not verify."""


# --- chain anchoring ---------------------------------------------------------------------------------------------
class AnchorError(ProvenanceError):
    """Chain anchoring failed."""


class ChainUnavailableError(AnchorError):
    """The chain node cannot be reached; ``where`` names the endpoint."""

    def __init__(self, message: str, *, where: str) -> None:
        super().__init__(message if where in message else f"{message} (at {where})")
        self.where = where


class AnchorRejectedError(AnchorError):
    """The contract refused the anchor (not authorised, or the tree size did not grow)."""


# --- storage -------------------------------------------------------------------------------------------------------
class StoreError(ProvenanceError):
    """Record store (SQL) failure."""
