"""Content-addressed block stores: an embedded directory (default) or an IPFS daemon's RPC API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from provenance.blockstore.base import BlockStore
from provenance.blockstore.car import write_car
from provenance.blockstore.ipfs_rpc import IpfsRpcBlockStore
from provenance.blockstore.local import LocalBlockStore

if TYPE_CHECKING:
    from provenance.config import Settings

__all__ = ["BlockStore", "IpfsRpcBlockStore", "LocalBlockStore", "make_blockstore", "write_car"]


def make_blockstore(settings: Settings) -> BlockStore:
    """The store the settings ask for: ``local`` under ``settings.blocks_dir``, or ``ipfs`` at ``ipfs_api_url``."""
    if settings.blockstore == "ipfs":
        return IpfsRpcBlockStore(settings.ipfs_api_url, settings.ipfs_timeout_s)
    return LocalBlockStore(settings.blocks_dir)
