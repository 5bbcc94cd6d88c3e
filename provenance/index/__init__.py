"""The hash index: find ledger records whose perceptual hash is within a Hamming distance of a query hash.

Layers, each usable alone:

* :class:`Index` (``base``) -- binary codes under int64 ids; :class:`FlatBinaryIndex` (exact, faiss) and
  :class:`CompactMultiHashIndex` (multi-index hashing in numpy CSR tables, for large collections), chosen by
  :func:`create_index`; :class:`MultiHashBinaryIndex` (faiss multi-hash) still loads and can be built by hand;
  index file + JSON sidecar.
* the catalog (``catalog``) -- the SQL table ``index_entries``, the source of truth the faiss files are built from.
* :class:`HashIndex` (``service``) -- one faiss index per hash channel ("oscar", "pdq", ...) kept in step with the
  catalog: add, withdraw, search by hex code, rebuild, save.
* channel versions (``channels``) -- one channel per (hash alg, model id), so codes of two models are never compared;
  ``rehash`` fills a new model's channel from the stored images (``provenance index rebuild --rehash``).
"""

from __future__ import annotations

from provenance.index.base import Hit, Index
from provenance.index.catalog import CatalogEntry
from provenance.index.channels import channel_for, channels_of
from provenance.index.codes import code_from_hex, code_from_int, code_to_hex, code_to_int, codes_from_hex
from provenance.index.compact_mih import CompactMultiHashIndex
from provenance.index.errors import (
    DuplicateIdError,
    EmptyIndexError,
    HashIndexError,
    IndexConflictError,
    IndexCorruptError,
    IndexEntryNotFoundError,
    IndexFileMissingError,
    IndexPermissionError,
    InvalidCodeError,
)
from provenance.index.factory import FLAT_MAX_CODES, create_index, load_index
from provenance.index.flat import FlatBinaryIndex
from provenance.index.multihash import MultiHashBinaryIndex
from provenance.index.service import HashIndex, IndexMatch

__all__ = [
    "FLAT_MAX_CODES",
    "CatalogEntry",
    "CompactMultiHashIndex",
    "DuplicateIdError",
    "EmptyIndexError",
    "FlatBinaryIndex",
    "HashIndex",
    "HashIndexError",
    "Hit",
    "Index",
    "IndexConflictError",
    "IndexCorruptError",
    "IndexEntryNotFoundError",
    "IndexFileMissingError",
    "IndexMatch",
    "IndexPermissionError",
    "InvalidCodeError",
    "MultiHashBinaryIndex",
    "channel_for",
    "channels_of",
    "code_from_hex",
    "code_from_int",
    "code_to_hex",
    "code_to_int",
    "codes_from_hex",
    "create_index",
    "load_index",
]

