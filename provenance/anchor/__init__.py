"""Chain anchoring of transparency-log checkpoints.

``EvmAnchor`` (web3) is imported lazily: importing web3 costs about a second, and most callers only need the types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from provenance.anchor.base import MAX_TREE_SIZE, Anchor, AnchorReceipt, OnChainAnchor, log_id_for

if TYPE_CHECKING:
    from provenance.anchor.evm import EvmAnchor

__all__ = ["MAX_TREE_SIZE", "Anchor", "AnchorReceipt", "EvmAnchor", "OnChainAnchor", "log_id_for"]


def __getattr__(name: str) -> Any:
    if name == "EvmAnchor":
        from provenance.anchor.evm import EvmAnchor

        return EvmAnchor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
