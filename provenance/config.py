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

    # --- ingest limits --------------------------------------------------------------------------------------------
    max_image_bytes: int = Field(50 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(100_000_000, gt=0)

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
