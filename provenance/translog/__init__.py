"""The transparency log: an append-only RFC 6962 Merkle tree over record CIDs, its proofs and signed checkpoints.

* :mod:`.hashing` — leaf/node hashing; :mod:`.proofs` — pure verifiers (all an auditor needs);
* :mod:`.tree` — proof generation over any node source, and :class:`MemoryMerkleLog`;
* :mod:`.sql` — :class:`SqlTransparencyLog`, the log in the SQL database (its tables register on ``provenance.db``);
* :mod:`.checkpoint` — C2SP signed-note checkpoints;
* :mod:`.tiles` — the log as C2SP ``tlog-tiles``: tile paths, which tiles a size has, entry bundles.
"""

from __future__ import annotations

from provenance.translog.checkpoint import (
    Checkpoint,
    NoteSignature,
    VerifierKey,
    encode_verifier_key,
    parse_checkpoint_note,
    parse_verifier_key,
    sign_checkpoint,
    verify_checkpoint_note,
    verify_checkpoint_note_with,
)
from provenance.translog.hashing import EMPTY_ROOT, LEAF_PREFIX, NODE_PREFIX, leaf_hash, node_hash, record_leaf_data
from provenance.translog.proofs import root_from_inclusion_proof, verify_consistency, verify_inclusion
from provenance.translog.sql import AppendedLeaf, LogLeaf, SqlTransparencyLog
from provenance.translog.tree import MemoryMerkleLog, NodeSource, consistency_proof, inclusion_proof, root_hash

__all__ = [
    "EMPTY_ROOT",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "AppendedLeaf",
    "Checkpoint",
    "LogLeaf",
    "MemoryMerkleLog",
    "NodeSource",
    "NoteSignature",
    "SqlTransparencyLog",
    "VerifierKey",
    "consistency_proof",
    "encode_verifier_key",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "parse_checkpoint_note",
    "parse_verifier_key",
    "record_leaf_data",
    "root_from_inclusion_proof",
    "root_hash",
    "sign_checkpoint",
    "verify_checkpoint_note",
    "verify_checkpoint_note_with",
    "verify_consistency",
    "verify_inclusion",
]
