"""Configuration: one Settings class, env prefix, cached getter, and .env.example documenting every variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from provenance.config import Settings, get_settings

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_documents_every_setting_and_nothing_else() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*PROVENANCE_([A-Z0-9_]+)=", text, flags=re.M))
    documented = {d for d in documented if not d.startswith("TEST_")}
    fields = {name.upper() for name in Settings.model_fields}
    assert documented == fields


def test_settings_come_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROVENANCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PROVENANCE_BLOCKSTORE", "ipfs")
    monkeypatch.setenv("PROVENANCE_CHAIN_RPC_URL", "")  # empty means unset
    s = get_settings()
    assert s.data_dir == tmp_path and s.blockstore == "ipfs" and s.chain_rpc_url is None
    assert s.resolved_database_url == f"sqlite:///{(tmp_path / 'ledger.sqlite3').resolve()}"
    assert get_settings() is s  # cached


def test_invalid_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("PROVENANCE_BLOCKSTORE", "s3")
    with pytest.raises(ValidationError, match="blockstore"):
        get_settings()


def test_importing_the_package_reads_no_settings() -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ, PROVENANCE_BLOCKSTORE="not-valid-at-all")
    code = "import provenance.cli, provenance.services, provenance.ledger, provenance.audit"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr  # would fail if anything built Settings at import time
