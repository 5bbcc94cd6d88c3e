"""C2PA fixtures: the real manifests in ../shared/data/c2pa (with their expected statuses) and a test PKI."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.fixtures.services import ROOT
from tests.provenance.c2pa.pki import TestPki, make_pki

C2PA_DATA = ROOT.parent / "shared" / "data" / "c2pa"


def expected_rows() -> list[dict[str, str]]:
    """Rows of ``expected_status.csv`` (read at collection time to parametrise the fixture tests)."""
    path = C2PA_DATA / "expected_status.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="session")
def c2pa_data() -> Path:
    if not C2PA_DATA.is_dir():
        pytest.skip(f"shared C2PA fixtures not found at {C2PA_DATA}")
    return C2PA_DATA


@pytest.fixture(scope="session")
def pki() -> TestPki:
    return make_pki()
