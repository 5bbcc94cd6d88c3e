"""One chaos topology per module (``tests/chaos/topology.py``): private Redis, PostgreSQL, js-ipfs and ganache, the
API and two workers as processes. Starting it costs ~30 s, so the faults share it; each scenario first makes sure
every part is back (``ensure_healthy``). A part that cannot be had skips (or fails under
``PROVENANCE_TEST_REQUIRE_SERVICES=1``) with the reason."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.chaos.load import ImageSource, photos_available
from tests.chaos.scenarios import FaultOutcome, Harness, seed, table
from tests.chaos.services import ServiceUnavailable
from tests.chaos.topology import start_topology
from tests.fixtures.services import unavailable

OUTCOMES: list[FaultOutcome] = []


@pytest.fixture(scope="module")
def chaos(request: pytest.FixtureRequest) -> Iterator[Harness]:
    missing = photos_available()
    if missing:
        unavailable(missing)
    try:
        topo = start_topology()
    except ServiceUnavailable as exc:
        unavailable(str(exc))
        raise
    failed_before = request.session.testsfailed
    try:
        images = ImageSource()
        yield Harness(topo, images, seed(topo, images))
    finally:
        # keep the logs of a failed run for a post-mortem (PROVENANCE_CHAOS_KEEP=1 keeps them always)
        keep = request.session.testsfailed > failed_before or bool(os.environ.get("PROVENANCE_CHAOS_KEEP"))
        topo.close(keep_files=keep)
        if keep:
            print(f"\nchaos: logs and state kept in {topo.tmp}")
        if OUTCOMES:
            print("\n" + table(OUTCOMES))
