"""Configured OSCAR-Net weights are checked when the service is wired: a missing or corrupt file stops start-up with
a ConfigError naming it (before: an internal error on every lookup); a good file, shipped or not, is accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from provenance.config import Settings
from provenance.errors import ConfigError
from provenance.hashing import OscarNetHasher
from provenance.services import open_ledger

WEIGHTS = Path(__file__).resolve().parents[2] / "hasher" / "weights"


def test_missing_or_corrupt_weights_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        OscarNetHasher(str(tmp_path / "absent.safetensors"))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ConfigError, match="bad.safetensors cannot be used"):
        OscarNetHasher(str(bad))
    with pytest.raises(ConfigError, match="bad.safetensors"):
        open_ledger(Settings(data_dir=tmp_path / "data", oscar_weights=bad))


def test_shipped_weights_pass_the_check(tmp_path: Path) -> None:
    for name in ("oscar_v1.safetensors", "oscar_v2.safetensors"):
        assert OscarNetHasher(str(WEIGHTS / name))._weights == str(WEIGHTS / name)
    assert OscarNetHasher(None)._weights is None  # the default model: nothing to check until first use
