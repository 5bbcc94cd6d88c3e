"""What anchoring a transparency-log checkpoint on a chain means, independent of the chain client.

The log proves consistency between its own checkpoints; the chain adds what a log cannot prove about itself: *when*
a checkpoint existed (the block's timestamp) and that it was never replaced (the contract refuses a tree size that
does not grow). Callers depend on the :class:`Anchor` protocol, so the backend (in-process EVM for development, a
real JSON-RPC node in production) is a configuration choice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

#: Largest tree size the contract accepts (it stores sizes as uint64).
MAX_TREE_SIZE = 2**64 - 1


def log_id_for(origin: str) -> bytes:
    """The 32-byte on-chain id of a log: sha256 of its checkpoint origin line (UTF-8), so anyone can recompute it."""
    return hashlib.sha256(origin.encode("utf-8")).digest()


@dataclass(frozen=True)
class SoftBindingEntry:
    """One key-value pair of the C2PA federated lookup, published with an anchor: ``value`` is the soft binding
    value (base64), ``resolution`` the JSON a client reads back (``provenance.c2pa.federated``)."""

    value: str
    resolution: str


@dataclass(frozen=True)
class AnchorReceipt:
    """Proof that one anchor transaction was mined: where (chain, contract, tx, block), when, and at what cost."""

    chain_id: int
    contract_address: str
    tx_hash: str
    block_number: int
    block_timestamp: int
    gas_used: int
    log_id: bytes
    tree_size: int
    root: bytes
    ephemeral: bool  # True when the chain lives only in this process: the receipt proves nothing to anyone else
    bindings: int = 0  # soft bindings published in the same transaction (C2PA federated lookup)


@dataclass(frozen=True)
class OnChainAnchor:
    """A checkpoint as the contract stores it (read back from chain state, not from our own records)."""

    log_id: bytes
    tree_size: int
    root: bytes
    timestamp: int
    block_number: int
    anchorer: str


@runtime_checkable
class Anchor(Protocol):
    """A place that timestamps checkpoints and refuses to let a log's tree size go backwards."""

    @property
    def chain_id(self) -> int: ...

    @property
    def contract_address(self) -> str: ...

    @property
    def ephemeral(self) -> bool: ...

    def anchor(self, log_id: bytes, tree_size: int, root: bytes,
               bindings: Sequence[SoftBindingEntry] = ()) -> AnchorReceipt:
        """Record ``root`` at ``tree_size`` for ``log_id`` in exactly one transaction; wait until it is mined.
        ``bindings`` (C2PA federated lookup) are published in that same transaction; a backend that cannot
        publish them refuses non-empty ``bindings`` rather than drop them.

        Raises ``AnchorRejectedError`` when the contract refuses (size not growing, not authorised, zero root) and
        ``ChainUnavailableError`` when the node cannot be reached.
        """
        ...

    def read(self, log_id: bytes, tree_size: int) -> OnChainAnchor | None:
        """The checkpoint anchored at exactly ``tree_size``, or None."""
        ...

    def latest(self, log_id: bytes) -> OnChainAnchor | None:
        """The largest anchored checkpoint of ``log_id``, or None."""
        ...

    def describe(self) -> str:
        """Human-readable backend: ``"in-process EVM (ephemeral)"`` or ``"rpc:<url>"``."""
        ...
