"""All configuration, in one place.

Settings come from environment variables prefixed ``PROVENANCE_`` (documented in ``.env.example``) or a ``.env``
file. Nothing reads them at import time: call :func:`get_settings` (cached). Tests call ``get_settings.cache_clear()``.
Every part has an embedded default that needs no service; setting its variable switches it to the real service.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from provenance.witness.endpoints import WitnessEndpoint


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROVENANCE_", env_file=".env", env_ignore_empty=True, extra="ignore")

    # --- where state lives --------------------------------------------------------------------------------------
    data_dir: Path = Field(Path(".provenance"), description="Data directory: keyring, local block store, SQLite DB.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the record store / log. Default: SQLite file in the data directory."
    )

    # --- block store --------------------------------------------------------------------------------------------
    blockstore: Literal["local", "ipfs"] = Field("local", description="'local' (embedded) or 'ipfs' (Kubo RPC API).")
    ipfs_api_url: str = Field("http://127.0.0.1:5001", description="Base URL of the IPFS daemon's RPC API.")
    ipfs_timeout_s: float = Field(30.0, gt=0)

    # --- chain anchoring ----------------------------------------------------------------------------------------
    chain_rpc_url: str | None = Field(
        None, description="Ethereum JSON-RPC URL. Unset: an in-process EVM whose state ends with the process."
    )
    chain_contract_address: str | None = Field(
        None, description="ProvenanceAnchor address. Unset: the address recorded by 'provenance chain deploy'."
    )
    chain_private_key: SecretStr | None = Field(
        None, description="Hex key that signs anchor transactions. Unset: the node's first unlocked account."
    )
    chain_timeout_s: float = Field(30.0, gt=0)
    chain_confirmations: int = Field(0, ge=0, description="Blocks to wait after an anchor tx before trusting it.")
    anchor_artifact: Path | None = Field(
        None, description="Compiled ProvenanceAnchor artifact. Unset: contracts/build/ProvenanceAnchor.json."
    )

    # --- transparency log ---------------------------------------------------------------------------------------
    log_origin: str = Field("provenance.example/log", description="Origin line of checkpoints; names this log.")
    log_key_name: str = Field("provenance-log", description="Signed-note key name of the checkpoint signer.")

    # --- witnesses (C2SP tlog-witness) ----------------------------------------------------------------------------
    witnesses: str | None = Field(
        None, description="Comma-separated URL=VKEY: the witnesses asked to cosign each checkpoint (VKEY from "
        "'provenance witness keygen'). Unset: none."
    )
    witness_quorum: int = Field(
        0, ge=0, description="Cosignatures a checkpoint needs before it is published and anchored (0: no witnesses)."
    )
    witness_timeout_s: float = Field(10.0, gt=0, description="Seconds to wait for one witness's answer.")

    # --- C2PA (Content Credentials) -----------------------------------------------------------------------------
    c2pa_trust_anchors: Path | None = Field(
        None, description="PEM bundle of C2PA trust anchors (roots). Unset: no signer is Trusted, at best Valid."
    )
    c2pa_signing_cert: Path | None = Field(
        None, description="PEM certificate chain (leaf first) that signs C2PA manifests. Unset: no C2PA signing."
    )
    c2pa_signing_key: Path | None = Field(None, description="PEM private key of the C2PA signing certificate.")
    c2pa_signing_alg: str = Field("es256", description="C2PA signing algorithm: es256/384/512, ps256/384/512, ed25519.")

    # --- C2PA soft binding: resolution API and federated lookup (docs/c2pa-softbinding.md) ------------------------
    softbinding_endpoints: str | None = Field(
        None, description="Comma-separated public base URL(s) of this service's Soft Binding Resolution API. Set: "
        "every anchor also publishes its batch's soft bindings on chain (C2PA federated lookup), resolving to "
        "these URLs. Unset: anchors carry no bindings."
    )
    softbinding_token: SecretStr | None = Field(
        None, description="Bearer token the soft-binding routes (/matches/*, /manifests/* stores) require. Unset: "
        "public."
    )

    # --- hash models (docs/hasher.md, "Model upgrades") ------------------------------------------------------------
    oscar_weights: Path | None = Field(
        None, description="OSCAR-Net weights new records are hashed with. Unset: the shipped default model."
    )
    oscar_migration_weights: str | None = Field(
        None, description="Comma-separated OSCAR-Net weights of previous models: lookup also hashes queries with "
        "them and searches their channel versions while 'provenance index rebuild --rehash' re-hashes the stored "
        "images under the current model. Unset: none."
    )

    # --- ingest limits --------------------------------------------------------------------------------------------
    max_image_bytes: int = Field(50 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(100_000_000, gt=0)

    # --- HTTP API -------------------------------------------------------------------------------------------------
    api_max_upload_bytes: int | None = Field(
        None, gt=0, description="Largest request body the API accepts (413 beyond, checked while streaming). "
        "Unset: max_image_bytes plus 64 KiB for the multipart envelope."
    )
    api_lookup_rate_per_s: float = Field(2.0, gt=0, description="Lookups per second refilled per client IP.")
    api_lookup_burst: int = Field(20, ge=1, description="Lookups a client IP may make at once (token bucket size).")
    api_change_map_ttl_s: float = Field(3600.0, gt=0, description="Seconds a lookup's change-map PNG is served.")
    api_change_map_max_files: int = Field(
        1000, ge=1, description="Most change-map PNGs kept on disk; publishing one more deletes the oldest."
    )
    api_change_map_max_bytes: int = Field(
        256 * 1024 * 1024, ge=1, description="Most bytes of change-map PNGs kept on disk; the oldest go first."
    )
    # limits shared by API replicas (docs/limits.md)
    rate_limit_redis_url: str | None = Field(
        None, description="Redis URL where API replicas keep their shared limits (lookup and image token buckets, "
        "per-client heavy-work slots), so N replicas give a client one budget. Unset: the Celery broker's Redis "
        "when queue='celery' (and it is redis://), else in-memory (one process). 'memory': in-memory always."
    )
    # hardening of the HTTP edge (docs/hardening.md)
    api_max_json_bytes: int = Field(
        64 * 1024, gt=0, description="Largest JSON request body or JSON form field (metadata); 413 beyond."
    )
    api_max_json_depth: int = Field(
        32, ge=1, le=256, description="Deepest nesting of [ and { a JSON body or field may have; 400 beyond. Checked "
        "on the bytes before parsing, so no recursion limit (ours or a dependency's) ever decides."
    )
    api_heavy_concurrency: int = Field(
        2, ge=1, description="Heavy requests (lookups, /matches/byContent, thumbnail renders) run at once, over all "
        "clients; a request waits up to api_heavy_wait_s for a slot, then gets 503 + Retry-After."
    )
    api_heavy_per_client: int = Field(
        1, ge=1, description="Heavy requests one client IP may have running at once; 429 + Retry-After beyond."
    )
    api_heavy_wait_s: float = Field(5.0, ge=0, description="Seconds a heavy request waits for a free slot.")
    api_image_rate_per_s: float = Field(
        10.0, gt=0, description="GET /v1/records/{cid}/image requests per second refilled per client IP."
    )
    api_image_burst: int = Field(60, ge=1, description="Image requests a client IP may make at once (token bucket).")
    api_trusted_proxies: str = Field(
        "", description="Comma-separated IPs or CIDR networks of reverse proxies whose X-Forwarded-For is believed. "
        "Empty (default): the header is ignored and the peer address is the client."
    )
    api_header_timeout_s: float = Field(
        10.0, gt=0, description="Seconds a connection may take to send a request's headers before it is closed."
    )
    api_body_idle_timeout_s: float = Field(
        30.0, gt=0, description="Seconds a request body may stall between two chunks before 408 (and close)."
    )
    api_body_timeout_s: float = Field(
        300.0, gt=0, description="Seconds a whole request body may take to arrive before 408 (and close)."
    )
    api_keep_alive_timeout_s: float = Field(
        5.0, gt=0, description="Seconds an idle keep-alive connection stays open between requests."
    )
    lookup_decode_max_side: int = Field(
        2048, ge=1024, description="Lookup queries larger than this (long side, px) are decoded shrunk to it by a "
        "whole factor (lookup itself works at <= 1024 px), bounding a query's memory and time."
    )

    # --- publishers and their keys (docs/publisher-keys.md) ---------------------------------------------------
    admin_token: SecretStr | None = Field(
        None, description="Bearer token of the admin routes (POST /v1/admin/publishers). Unset: admin routes are off."
    )
    statement_max_age_s: float = Field(
        600.0, gt=0, description="A publisher statement issued longer ago (or further ahead) than this is refused."
    )

    # --- lookup receipts (docs/receipts.md) --------------------------------------------------------------------
    receipt_retention_days: float = Field(
        365.0, gt=0, description="Days a signed lookup receipt stays at its permalink (GET /v1/receipts/{id})."
    )
    receipt_max_count: int = Field(
        1_000_000, ge=1, description="Most receipts kept for permalinks; the oldest beyond it are deleted."
    )

    # --- ingest queue (workers/) ----------------------------------------------------------------------------------
    queue: Literal["inprocess", "celery"] = Field(
        "inprocess", description="'inprocess': a thread pool in this process (no broker). 'celery': a broker and "
        "separate 'provenance worker' processes. Only this setting switches; broker_url alone never does."
    )
    broker_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker (Redis) when queue='celery'.")
    result_backend: str = Field(
        "redis://127.0.0.1:6379/0", description="Celery result backend: where ingest task status is kept."
    )
    broker_visibility_timeout_s: int = Field(
        3600, gt=0, description="Seconds before a task a dead worker held is redelivered; above the longest task."
    )
    anchor_every_s: float = Field(300.0, gt=0, description="Seconds between periodic anchors (celery beat).")
    anchor_every_records: int = Field(
        1000, ge=1, description="Anchor sooner, once this many records were appended since the last checkpoint."
    )
    ingest_max_retries: int = Field(8, ge=0, description="Retries of a step on a transient error before it fails.")
    ingest_retry_backoff_s: float = Field(
        2.0, gt=0, description="Base of the retry backoff: waits of half to all of base * 2**retry seconds."
    )
    ingest_retry_backoff_max_s: float = Field(300.0, gt=0, description="Longest wait between two retries.")
    ingest_duplicate_policy: Literal["flag", "refuse"] = Field(
        "flag", description="An upload whose image another publisher registered first (same sha256, or a verified "
        "near-duplicate): 'flag' ingests it and names the earlier record in the task result; 'refuse' answers 409 "
        "(or fails the task) naming the earlier record."
    )
    ingest_task_retention_s: float = Field(
        30 * 86400.0, gt=0, description="Seconds a finished in-process ingest task stays queryable by its id."
    )
    ingest_max_pending_per_publisher: int = Field(
        32, ge=1, description="Uploads of one publisher accepted (202) but not yet ingested; beyond it an upload "
        "gets 429 with Retry-After. Counted across replicas (in the broker's Redis) with queue='celery'."
    )

    # --- operations: probes and metrics (docs/operations.md) --------------------------------------------------------
    index_max_staleness_s: float = Field(
        60.0, gt=0, description="/readyz fails when the hash index lags the catalog by more than this many seconds."
    )
    worker_metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Port on which each ingest worker serves Prometheus /metrics. Unset: none."
    )
    worker_metrics_host: str = Field("127.0.0.1", description="Address the worker metrics port listens on.")

    # --- operations: backup and restore (docs/backup.md) -------------------------------------------------------------
    backup_passphrase: SecretStr | None = Field(
        None, description="Passphrase that encrypts the keyring in 'provenance backup' archives and authenticates "
        "their manifest (at least 12 characters). Unset: asked for only when stdin is a terminal, else refused."
    )

    # --- logging ---------------------------------------------------------------------------------------------------
    log_level: str = Field("INFO")
    log_format: Literal["console", "json"] = Field("console")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ledger.sqlite3').resolve()}"

    @model_validator(mode="after")
    def _check_witnesses(self) -> Settings:
        from provenance.errors import ConfigError

        try:
            count = len(self.witness_endpoints)
        except ConfigError as exc:
            raise ValueError(f"PROVENANCE_WITNESSES: {exc}") from exc
        if self.witness_quorum > count:
            raise ValueError(f"PROVENANCE_WITNESS_QUORUM is {self.witness_quorum} but only {count} witness(es) are "
                             "configured in PROVENANCE_WITNESSES: no checkpoint could ever be published")
        return self

    @property
    def witness_endpoints(self) -> tuple[WitnessEndpoint, ...]:
        """``witnesses`` parsed (see :func:`provenance.witness.endpoints.parse_witnesses`)."""
        from provenance.witness.endpoints import parse_witnesses

        return parse_witnesses(self.witnesses)

    @property
    def softbinding_endpoint_list(self) -> tuple[str, ...]:
        """``softbinding_endpoints`` split, without trailing slashes."""
        return tuple(u.strip().rstrip("/") for u in (self.softbinding_endpoints or "").split(",") if u.strip())

    @property
    def oscar_migration_weight_list(self) -> tuple[Path, ...]:
        """``oscar_migration_weights`` split into paths."""
        return tuple(Path(p.strip()) for p in (self.oscar_migration_weights or "").split(",") if p.strip())

    @property
    def shared_limits_url(self) -> str | None:
        """Where the API's rate limits and work slots live (``rate_limit_redis_url`` resolved): a Redis URL, or
        None for in-memory limits in each process."""
        url = (self.rate_limit_redis_url or "").strip()
        if url.lower() == "memory":
            return None
        if url:
            return url
        if self.queue == "celery" and self.broker_url.startswith(("redis://", "rediss://", "unix://")):
            return self.broker_url
        return None

    @property
    def keyring_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def blocks_dir(self) -> Path:
        return self.data_dir / "blocks"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
