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


class InvalidMetadataError(InvalidInputError):
    """Publisher metadata breaks its schema (key count, lengths, types, UTF-8, capture_time, duplicate keys)."""


class IngestConflictError(InvalidInputError):
    """An upload conflicts with what is registered already; ``record_cid`` / ``publisher_id`` name that record."""

    def __init__(self, message: str, *, record_cid: str, publisher_id: str) -> None:
        super().__init__(message)
        self.record_cid = record_cid
        self.publisher_id = publisher_id


class MetadataConflictError(IngestConflictError):
    """The same publisher already registered these bytes with other metadata (records are immutable)."""


class DuplicateImageError(IngestConflictError):
    """Another publisher registered this image first and the duplicate policy is ``refuse``."""


class InvalidRecordError(InvalidInputError):
    """A record does not match the schema or its canonical form."""


class UnknownPublisherError(InvalidInputError):
    """No publisher of that name or key id is registered."""


class SignatureError(InvalidInputError):
    """A signature does not verify under the claimed key."""


class ReceiptError(InvalidInputError):
    """A lookup receipt is malformed, or does not verify under the given service key; ``check`` names what failed
    (``json``, ``field:<path>``, ``service_key``, ``key_mismatch``, ``signature``)."""

    def __init__(self, message: str, *, check: str = "receipt") -> None:
        super().__init__(message)
        self.check = check


class StatementError(InvalidInputError):
    """A publisher statement is malformed, stale, replayed, or names another image or publisher."""


class ReplayError(StatementError):
    """A signed statement or key event that was already used is presented again."""


class KeyEventError(InvalidInputError):
    """A key event (registration, rotation, revocation, withdrawal) is malformed or not signed by who it must be."""


class ServiceEventError(KeyEventError):
    """A log-key or anchorer rotation event is malformed, or not signed by the keys it must be."""


class RevokedKeyError(SignatureError):
    """The signing key was revoked (or rotated away) before this signature was presented."""


class BundleError(ProvenanceError):
    """A proof bundle is malformed, or one of its checks failed; ``check`` names which."""

    def __init__(self, message: str, *, check: str = "bundle") -> None:
        super().__init__(message)
        self.check = check


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


class LogKeyChangedError(LogError):
    """The log key was rotated while this work was being signed with the previous key: sign it again."""


class TilePathError(InvalidInputError):
    """A path is not a well-formed C2SP tlog-tiles tile or entry-bundle path (HTTP 400)."""


class TileNotFoundError(LogError):
    """A tile (or the checkpoint) does not exist in the log as it stands, e.g. beyond its size (HTTP 404)."""


class TileSourceError(LogError):
    """Tiles to audit cannot be read: a server unreachable or answering errors, a directory missing; ``where``
    names it."""

    def __init__(self, message: str, *, where: str) -> None:
        super().__init__(message if where in message else f"{message} (at {where})")
        self.where = where


class CosignatureError(CheckpointError):
    """A witness cosignature (C2SP tlog-cosignature) is malformed, or does not verify under the witness's key."""


# --- witnesses -----------------------------------------------------------------------------------------------------
class WitnessError(ProvenanceError):
    """Talking to a witness, or being one, failed."""


class WitnessQuorumError(WitnessError):
    """Fewer witnesses than the configured quorum cosigned a checkpoint: it is neither published nor anchored.

    Nothing is lost (appended records stay in the log); publication waits for the next try.
    """


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


class SchemaVersionError(StoreError):
    """The database's schema revision cannot be brought to this code's (unknown, newer, or not recognisable)."""


# --- backup and restore (provenance/backup/) ----------------------------------------------------------------------
class BackupError(ProvenanceError):
    """A backup could not be made or restored (nothing was written to the restore target)."""


class BackupArchiveError(BackupError):
    """The archive is not a provenance backup, is corrupt or truncated, or was altered."""


class BackupPassphraseError(BackupError):
    """No backup passphrase was given, or it is not the one the archive was made with."""


class RestoreTargetError(BackupError):
    """The restore target (data directory or database) is not empty and ``--force`` was not given."""
