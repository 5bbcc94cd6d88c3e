"""All configuration, in one place.

Settings come from environment variables prefixed ``PROVENANCE_`` (documented in ``.env.example``) or a ``.env``
file. Nothing reads them at import time: call :func:`get_settings` (cached). Tests call ``get_settings.cache_clear()``.
Every part has an embedded default that needs no service; setting its variable switches it to the real service.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    # --- C2PA (Content Credentials) -----------------------------------------------------------------------------
    c2pa_trust_anchors: Path | None = Field(
        None, description="PEM bundle of C2PA trust anchors (roots). Unset: no signer is Trusted, at best Valid."
    )
    c2pa_signing_cert: Path | None = Field(
        None, description="PEM certificate chain (leaf first) that signs C2PA manifests. Unset: no C2PA signing."
    )
    c2pa_signing_key: Path | None = Field(None, description="PEM private key of the C2PA signing certificate.")
    c2pa_signing_alg: str = Field("es256", description="C2PA signing algorithm: es256/384/512, ps256/384/512, ed25519.")

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

    # --- logging ---------------------------------------------------------------------------------------------------
    log_level: str = Field("INFO")
    log_format: Literal["console", "json"] = Field("console")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ledger.sqlite3').resolve()}"

    @property
    def keyring_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def blocks_dir(self) -> Path:
        return self.data_dir / "blocks"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
