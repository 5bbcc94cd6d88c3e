"""Composition root: build the ledger and its adapters from :class:`Settings`. The only place that wires things."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provenance.anchor.base import Anchor
from provenance.blockstore import make_blockstore
from provenance.config import Settings
from provenance.db import create_schema, make_engine
from provenance.errors import AnchorError, ChainUnavailableError
from provenance.hashing import default_hashers
from provenance.ingest import IngestPipeline
from provenance.keyring import Keyring
from provenance.ledger import Ledger, LedgerConfig
from provenance.lookup.service import Lookup
from provenance.witness.cosigning import CheckpointWitnesses


def open_ledger(settings: Settings) -> Ledger:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    create_schema(engine)
    return Ledger(
        engine=engine,
        blockstore=make_blockstore(settings),
        keyring=Keyring(settings.keyring_dir),
        hashers=default_hashers(settings.oscar_weights),
        config=LedgerConfig(
            origin=settings.log_origin,
            log_key_name=settings.log_key_name,
            max_image_bytes=settings.max_image_bytes,
            max_image_pixels=settings.max_image_pixels,
            statement_max_age_s=settings.statement_max_age_s,
            softbinding_endpoints=settings.softbinding_endpoint_list,
        ),
        anchor_factory=lambda ledger: make_anchor(settings, ledger),
        witnesses=make_witnesses(settings),
    )


def make_witnesses(settings: Settings) -> CheckpointWitnesses | None:
    """The witnesses that must cosign each checkpoint (PROVENANCE_WITNESSES / _QUORUM); None when the quorum is 0."""
    if settings.witness_quorum == 0:
        return None
    return CheckpointWitnesses(settings.witness_endpoints, settings.witness_quorum,
                               timeout_s=settings.witness_timeout_s)


@dataclass
class Service:
    """Everything the CLI, the HTTP API and the workers use, wired once from settings."""

    settings: Settings
    ledger: Ledger
    lookup: Lookup
    pipeline: IngestPipeline
    queue: Any = None  # workers.queue.IngestQueue, attached by the API / CLI
    receipts: Any = None  # provenance.lookup_receipts.ReceiptIssuer, attached by the first lookup

    def close(self) -> None:
        if self.queue is not None and hasattr(self.queue, "close"):
            self.queue.close()
        self.lookup.index.close()
        self.ledger.close()


def open_lookup(settings: Settings, ledger: Ledger) -> Lookup:
    from provenance.index import HashIndex

    from provenance.hashing import OscarNetHasher

    index = HashIndex(settings.data_dir, ledger.engine)
    previous = tuple(OscarNetHasher(str(w)) for w in settings.oscar_migration_weight_list)
    return Lookup(ledger, index, change_map_dir=settings.data_dir / "change-maps",
                  decode_max_side=settings.lookup_decode_max_side, migration_hashers=previous)


def open_pipeline(settings: Settings, ledger: Ledger | None = None) -> IngestPipeline:
    ledger = ledger or open_ledger(settings)
    from provenance.c2pa import trust_anchors_from_settings

    return IngestPipeline(ledger, open_lookup(settings, ledger), c2pa_trust_anchors=trust_anchors_from_settings(settings),
                          duplicate_policy=settings.ingest_duplicate_policy)


def open_service(settings: Settings, ledger: Ledger | None = None) -> Service:
    """Ledger (``ledger`` if already open) + lookup + ingest pipeline. The queue
    (``workers.queue.open_queue(settings, service.pipeline)``) is attached by the caller that needs one (HTTP API,
    CLI): dependencies point from workers to provenance."""
    pipeline = open_pipeline(settings, ledger or open_ledger(settings))
    return Service(settings, pipeline.ledger, pipeline.lookup, pipeline)


def _private_key(settings: Settings) -> str | None:
    """The anchoring account's key: the one ``provenance chain rotate-anchorer`` installed in the keyring, else
    PROVENANCE_CHAIN_PRIVATE_KEY (docs/key-rotation.md), else None (the node's first unlocked account)."""
    rotated = Keyring(settings.keyring_dir).anchorer_key()
    if rotated:
        return rotated
    return settings.chain_private_key.get_secret_value() if settings.chain_private_key else None


def rpc_chain_id(rpc_url: str, timeout_s: float) -> int:
    from web3 import HTTPProvider, Web3

    try:
        return int(Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s})).eth.chain_id)
    except Exception as exc:  # noqa: BLE001 - web3 raises many transport types; all mean "node not answering"
        raise ChainUnavailableError(f"EVM node unreachable: {exc.__class__.__name__}", where=rpc_url) from exc


def make_anchor(settings: Settings, ledger: Ledger) -> Anchor:
    """In-process EVM by default; a real chain when ``PROVENANCE_CHAIN_RPC_URL`` is set."""
    from provenance.anchor.evm import EvmAnchor

    if not settings.chain_rpc_url:
        return EvmAnchor.in_process(artifact=settings.anchor_artifact)
    address = settings.chain_contract_address
    if address is None:
        chain_id = rpc_chain_id(settings.chain_rpc_url, settings.chain_timeout_s)
        with ledger.reader.connect() as conn:
            address = ledger.store.deployed_contract(conn, chain_id)
        if address is None:
            raise AnchorError(
                f"no ProvenanceAnchor contract known for chain {chain_id} at {settings.chain_rpc_url}: run "
                "'provenance chain deploy' or set PROVENANCE_CHAIN_CONTRACT_ADDRESS"
            )
    return EvmAnchor.connect(
        settings.chain_rpc_url,
        address,
        private_key=_private_key(settings),
        timeout_s=settings.chain_timeout_s,
        confirmations=settings.chain_confirmations,
        artifact=settings.anchor_artifact,
    )


def deploy_contract(settings: Settings, ledger: Ledger) -> Anchor:
    from provenance.anchor.evm import EvmAnchor

    if not settings.chain_rpc_url:
        raise AnchorError("set PROVENANCE_CHAIN_RPC_URL to deploy to a real chain (the in-process EVM deploys itself)")
    anchor = EvmAnchor.deploy_to(
        settings.chain_rpc_url,
        private_key=_private_key(settings),
        timeout_s=settings.chain_timeout_s,
        artifact=settings.anchor_artifact,
    )
    with ledger.engine.begin() as conn:
        ledger.store.record_deployment(conn, anchor.chain_id, anchor.contract_address)
    return anchor
