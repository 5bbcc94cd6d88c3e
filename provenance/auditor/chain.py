"""Read a log's anchors back from the ``ProvenanceAnchor`` contract, as an outside auditor: read-only, no account.

:class:`ChainAnchors` lists every checkpoint anchored for a log (the contract's ``Anchored`` events, each confirmed
against the contract's state with ``anchorOf``) and reads the one at a given tree size. It wraps
:class:`provenance.anchor.evm.EvmAnchor`, which checks that the address holds this contract's code.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import requests
from web3 import Web3
from web3.exceptions import Web3Exception

from provenance.anchor.base import OnChainAnchor
from provenance.anchor.evm import EvmAnchor, load_artifact
from provenance.errors import AnchorError, ChainUnavailableError

__all__ = ["AnchorSource", "ChainAnchors"]

_NO_SENDER = "0x0000000000000000000000000000000000000000"  # reads need no account


@runtime_checkable
class AnchorSource(Protocol):
    def describe(self) -> str: ...

    def read(self, log_id: bytes, tree_size: int) -> OnChainAnchor | None: ...

    def anchors(self, log_id: bytes) -> list[OnChainAnchor]:
        """Every checkpoint anchored for ``log_id``, by tree size."""
        ...


class ChainAnchors:
    """Anchors of the contract behind ``anchor`` (any :class:`EvmAnchor`: in-process or over JSON-RPC)."""

    def __init__(self, anchor: EvmAnchor, *, where: str | None = None) -> None:
        self._anchor = anchor
        self._where = where or anchor.describe()
        self._contract = anchor.web3.eth.contract(address=Web3.to_checksum_address(anchor.contract_address),
                                                  abi=load_artifact().abi)

    @classmethod
    def connect(cls, rpc_url: str, contract_address: str, *, timeout_s: float = 30.0) -> ChainAnchors:
        """Attach read-only to the contract at ``contract_address`` on the node at ``rpc_url``."""
        w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))
        anchor = EvmAnchor(w3, contract_address, artifact=load_artifact(), where=rpc_url, ephemeral=False,
                           sender=_NO_SENDER, timeout_s=timeout_s)
        return cls(anchor, where=rpc_url)

    def describe(self) -> str:
        return f"{self._where}, contract {self._anchor.contract_address} (chain {self._anchor.chain_id})"

    def read(self, log_id: bytes, tree_size: int) -> OnChainAnchor | None:
        return self._anchor.read(log_id, tree_size)

    def anchors(self, log_id: bytes) -> list[OnChainAnchor]:
        try:
            events: list[Any] = list(self._contract.events.Anchored.get_logs(
                from_block=0, to_block="latest", argument_filters={"logId": log_id}))
        except (requests.RequestException, ConnectionError, TimeoutError) as exc:
            raise ChainUnavailableError(f"cannot read Anchored events: {type(exc).__name__}",
                                        where=self._where) from exc
        except (Web3Exception, ValueError) as exc:
            raise AnchorError(f"reading Anchored events failed on {self._where}: {exc}") from exc
        sizes = sorted({int(e["args"]["treeSize"]) for e in events if bytes(e["args"]["logId"]) == log_id})
        found = [self.read(log_id, size) for size in sizes]
        return [a for a in found if a is not None]
