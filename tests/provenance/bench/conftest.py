"""Small fixtures for the benchmark tests: a few real photos copied from ../shared (skipped when absent)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def few_photos(tmp_path_factory: pytest.TempPathFactory, shared_photos: Path) -> Path:
    """Three small real photos in two subsets (skimage coffee + chelsea, kodak kodim23)."""
    root = tmp_path_factory.mktemp("photos")
    for rel in ("skimage/coffee.png", "skimage/chelsea.png", "kodak24/kodim23.png"):
        src = shared_photos / rel
        if not src.is_file():
            pytest.skip(f"{src} missing")
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, root / rel)
    return root
