"""Faults during a stream of ingests through the Celery path, on real services (docs/chaos.md).

Each test breaks one part while uploads (``POST /v1/assets``) and lookups flow, heals it, and then checks, with
every service back: every accepted upload has exactly one record, one log leaf and its index entries; every refused
one got a clear error at the time (4xx, or 503 naming the part); lookups answered (with the right verdict) or
answered 503 naming the part; ``provenance audit`` passes. Lengths are cut for CI (IPFS away 10 s instead of 30 s);
``benchmarks/chaos_run.py`` runs the same scenarios at full length and writes the table in docs/chaos.md.
"""

from __future__ import annotations

import pytest

from tests.chaos import scenarios
from tests.chaos.conftest import OUTCOMES
from tests.chaos.scenarios import FaultOutcome, Harness
from tests.chaos.services import SmallDisk

pytestmark = [pytest.mark.timeout(300), pytest.mark.ipfs, pytest.mark.evm_rpc, pytest.mark.postgres]


def _judge(outcome: FaultOutcome) -> None:
    OUTCOMES.append(outcome)
    print(f"\n{outcome.row()}\n  notes: {outcome.notes}; refusals: {outcome.refusals}")
    assert outcome.in_flight > 0, "the fault struck with no upload in flight: it tested nothing"
    assert outcome.accepted > 0, "no upload was accepted around the fault: it tested nothing"
    assert outcome.ok, "\n".join([f"{outcome.fault}: lost {outcome.lost}, duplicated {outcome.duplicated}",
                                  *outcome.problems[:20]])


def test_kill_9_a_worker_mid_chain(chaos: Harness) -> None:
    scenarios.ensure_healthy(chaos)
    outcome = scenarios.worker_kill(chaos)
    _judge(outcome)
    assert outcome.facts["redelivered"] >= 1, "the kill hit no running step: nothing was redelivered"


def test_restart_redis(chaos: Harness) -> None:
    scenarios.ensure_healthy(chaos)
    outcome = scenarios.redis_restart(chaos)
    _judge(outcome)


def test_restart_postgresql(chaos: Harness) -> None:
    scenarios.ensure_healthy(chaos)
    _judge(scenarios.postgres_restart(chaos))


def test_stop_ipfs(chaos: Harness) -> None:
    scenarios.ensure_healthy(chaos)
    outcome = scenarios.ipfs_outage(chaos, outage_s=10)
    _judge(outcome)
    assert outcome.refusals.get("503 blockstore_unavailable"), "uploads during the outage must be refused, naming it"


def test_stop_the_evm_node_across_anchoring(chaos: Harness) -> None:
    scenarios.ensure_healthy(chaos)
    outcome = scenarios.evm_outage(chaos, outage_s=6)
    _judge(outcome)
    assert outcome.facts["anchor_retries"] >= 1, "no anchoring met the stopped node: the fault tested nothing"


def test_kill_9_the_api_during_uploads(chaos: Harness) -> None:
    scenarios.ensure_healthy(chaos)
    _judge(scenarios.api_kill(chaos))


def test_fill_the_data_directory_disk(chaos: Harness) -> None:
    if chaos.topo.disk is None:
        pytest.skip(f"disk-full fault: {SmallDisk.why_not() or 'no small disk for the data directory'}")
    scenarios.ensure_healthy(chaos)
    _judge(scenarios.disk_full(chaos, outage_s=6))
