"""The one check of a bundle that needs the network: read its checkpoint's anchor back from the chain.

A thin I/O layer over :func:`~provenance.bundle.verify.verify_bundle`'s result: a read-only ``anchorOf(logId,
treeSize)`` call on the ProvenanceAnchor contract the bundle's receipt names, over any Ethereum JSON-RPC node the
user chooses (``provenance verify --chain-rpc URL``). No account, no transaction. It checks that the node is the
receipt's chain, that the address holds the ProvenanceAnchor code of the committed artifact, and that the contract
stores the verified checkpoint's root at its tree size; it reports the block time the chain gives.
Failures raise :class:`~provenance.errors.BundleError` with ``check``: ``anchor.missing``, ``anchor.ephemeral``,
``anchor.unreachable``, ``anchor.chain``, ``anchor.contract``, ``anchor.root``, ``anchor.block`` or ``anchor.time``.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance.bundle.model import ProofBundle, iso_time
from provenance.bundle.verify import BundleReport
from provenance.errors import BundleError, ConfigError

__all__ = ["ChainCheck", "verify_anchor_on_chain"]

_ZERO32 = b"\x00" * 32


@dataclass(frozen=True)
class ChainCheck:
    """The anchor as the chain itself stores it."""

    rpc: str  # the node's URL without credentials
    chain_id: int
    contract: str
    block: int
    block_timestamp: int
    anchorer: str

    def to_obj(self) -> dict[str, Any]:
        return {"rpc": self.rpc, "chain_id": self.chain_id, "contract": self.contract, "block": self.block,
                "block_timestamp": self.block_timestamp, "block_time": iso_time(self.block_timestamp),
                "anchorer": self.anchorer}


def public_url(url: str) -> str:
    """``url`` without user:password@ or query string, fit for messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port is not None else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def verify_anchor_on_chain(bundle: ProofBundle, report: BundleReport, rpc_url: str, *, timeout_s: float = 15.0,
                           artifact: str | Path | None = None) -> ChainCheck:
    """Read the anchor of ``report``'s checkpoint (already verified offline) from the chain at ``rpc_url``."""
    a = bundle.anchor
    if a is None:
        raise BundleError("the bundle carries no anchor receipt: its checkpoint was not anchored on a chain",
                          check="anchor.missing")
    if a.ephemeral:
        raise BundleError(f"the checkpoint was anchored on an in-process EVM (chain {a.chain_id}) that lived only in "
                          "the log's process: there is no chain to read it back from", check="anchor.ephemeral")
    import requests
    from web3 import Web3
    from web3.exceptions import Web3Exception

    from provenance.anchor.evm import load_artifact

    where = public_url(rpc_url)
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))
    unreachable = (requests.RequestException, ConnectionError, TimeoutError, OSError)
    try:
        chain_id = int(w3.eth.chain_id)
        address = Web3.to_checksum_address(a.contract)
        code = bytes(w3.eth.get_code(address))
    except unreachable as exc:
        raise BundleError(f"the chain node at {where} cannot be reached: {type(exc).__name__}",
                          check="anchor.unreachable") from None
    except (Web3Exception, ValueError) as exc:
        raise BundleError(f"the chain node at {where} answered with an error: {exc}",
                          check="anchor.unreachable") from None
    if chain_id != a.chain_id:
        raise BundleError(f"{where} is chain {chain_id}, but the checkpoint was anchored on chain {a.chain_id}: the "
                          "wrong chain", check="anchor.chain")
    try:
        art = load_artifact(artifact)
    except ConfigError as exc:
        raise BundleError(str(exc), check="anchor.contract") from None
    if not code:
        raise BundleError(f"no contract at {address} on chain {chain_id} ({where})", check="anchor.contract")
    if not art.matches_deployed(code):
        raise BundleError(f"the code at {address} on chain {chain_id} is not the ProvenanceAnchor contract",
                          check="anchor.contract")
    log_id = hashlib.sha256(report.origin.encode("utf-8")).digest()
    try:
        contract = w3.eth.contract(address=address, abi=art.abi)
        root, timestamp, block, anchorer = contract.functions.anchorOf(log_id, report.tree_size).call()
    except unreachable as exc:
        raise BundleError(f"the chain node at {where} cannot be reached: {type(exc).__name__}",
                          check="anchor.unreachable") from None
    except (Web3Exception, ValueError) as exc:
        raise BundleError(f"reading the anchor from {address} at {where} failed: {exc}",
                          check="anchor.unreachable") from None
    root = bytes(root)
    if root == _ZERO32:
        raise BundleError(f"contract {address} on chain {chain_id} holds no anchor of {report.origin!r} at tree size "
                          f"{report.tree_size}", check="anchor.missing")
    if root != report.root:
        raise BundleError(f"on chain {chain_id}, {report.origin!r} at tree size {report.tree_size} is anchored with "
                          f"root {root.hex()}, not the checkpoint's {report.root.hex()}", check="anchor.root")
    if int(block) != a.block:
        raise BundleError(f"the anchor was mined in block {int(block)}, not block {a.block} as the receipt says",
                          check="anchor.block")
    if int(timestamp) != a.block_timestamp:
        raise BundleError(f"the chain dates the anchor {iso_time(int(timestamp))}, not {a.block_time} as the receipt "
                          "says", check="anchor.time")
    return ChainCheck(where, chain_id, address, int(block), int(timestamp), str(anchorer))
