"""Probes and metrics of the API (docs/operations.md): /healthz, /readyz naming what is not ready, and /metrics
whose values move with real ingests, lookups and failures (the real ledger, index, lookup and queue: light_service)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from provenance.api.app import create_app
from provenance.api.keys import create_api_key
from provenance.index.catalog import IndexCatalog
from provenance.services import Service
from tests.fixtures.services import free_port
from tests.provenance.api.conftest import bearer
from tests.provenance.api.light_service import open_light_service, photo


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[TestClient, Service, str]]:
    # A long staleness limit: the background catch-up runs every 30 s, so a test can see the index lag.
    service = open_light_service(tmp_path / "data", index_max_staleness_s=600)
    service.ledger.add_publisher("alpha")
    key = create_api_key(service.ledger.engine, "alpha")
    with TestClient(create_app(lambda: service, settings=service.settings, anchor=False)) as client:
        yield client, service, key


def _ingest(client: TestClient, key: str, data: bytes) -> dict[str, Any]:
    url = client.post("/v1/assets", headers=bearer(key), files={"file": ("a.png", data, "image/png")}).json()[
        "status_url"]
    deadline = time.monotonic() + 60
    while (task := client.get(url).json())["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return task


def test_healthz_and_readyz(live: tuple[TestClient, Service, str], shared_photos: Path) -> None:
    client, service, key = live
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready" and body["not_ready"] == []
    assert set(body["checks"]) == {"database", "blockstore", "index"}  # no chain configured: not checked
    assert all(c["ok"] for c in body["checks"].values())

    # Another process (a worker, another replica) added a code an hour ago that this one has not loaded.
    _ingest(client, key, photo(shared_photos, 1))
    with service.ledger.engine.begin() as conn:
        IndexCatalog().insert(conn, "phash", "bafkreiother", "alpha", "0123456789abcdef",
                              now=datetime.now(timezone.utc) - timedelta(hours=1))
    stale = client.get("/readyz")
    assert stale.status_code == 503
    body = stale.json()
    assert body["not_ready"] == ["index"] and "phash is 1 entries" in body["checks"]["index"]["detail"]
    assert body["checks"]["database"]["ok"] and body["checks"]["blockstore"]["ok"]
    assert value(scrape(client), "provenance_index_staleness_seconds", channel="phash") > 3000
    service.lookup.index.refresh_all()  # what the server's background catch-up does
    assert client.get("/readyz").status_code == 200


def test_a_channel_another_process_creates_is_ready_within_the_staleness_limit(
        live: tuple[TestClient, Service, str]) -> None:
    """A new deployment's API starts on an empty catalog; a worker then registers the first record, creating the
    channel. That is a lag like any other, not a reason to leave the load balancer (the soak saw /readyz flap to
    503 "channels not loaded yet"); a channel left unloaded past the limit is not ready, and says so."""
    client, service, _ = live  # staleness limit 600 s
    with service.ledger.engine.begin() as conn:
        IndexCatalog().insert(conn, "phash", "bafkreiother", "alpha", "0123456789abcdef")
    fresh = client.get("/readyz")
    assert fresh.status_code == 200, fresh.text
    assert "0 of 1 channels loaded; 1 entries to pick up" in fresh.json()["checks"]["index"]["detail"]
    with service.ledger.engine.begin() as conn:
        IndexCatalog().insert(conn, "oscar-net", "bafkreiother", "alpha", "0123456789abcdef",
                              now=datetime.now(timezone.utc) - timedelta(hours=1))
    stale = client.get("/readyz")
    assert stale.status_code == 503 and stale.json()["not_ready"] == ["index"]
    assert "oscar-net is 1 entries (3600 s) behind the catalog (not loaded yet) (limit 600 s)" == \
        stale.json()["checks"]["index"]["detail"]


def test_the_server_catches_its_index_up_without_lookups(tmp_path: Path, shared_photos: Path) -> None:
    service = open_light_service(tmp_path / "data", index_max_staleness_s=2)  # catch-up every 0.5 s
    service.ledger.add_publisher("alpha")
    key = create_api_key(service.ledger.engine, "alpha")
    with TestClient(create_app(lambda: service, settings=service.settings, anchor=False)) as client:
        _ingest(client, key, photo(shared_photos, 1))
        with service.ledger.engine.begin() as conn:  # what another process adds
            IndexCatalog().insert(conn, "phash", "bafkreiother", "alpha", "0123456789abcdef",
                                  now=datetime.now(timezone.utc) - timedelta(seconds=30))
        deadline = time.monotonic() + 10
        while value(scrape(client), "provenance_index_entries", channel="phash") < 2:
            assert time.monotonic() < deadline, "the background catch-up did not load the new entry"
            time.sleep(0.2)
        assert client.get("/readyz").status_code == 200


def test_readyz_names_an_unreachable_chain(tmp_path: Path) -> None:
    service = open_light_service(tmp_path / "data", chain_rpc_url=f"http://127.0.0.1:{free_port()}")
    with TestClient(create_app(lambda: service, settings=service.settings, anchor=False)) as client:
        resp = client.get("/readyz")
    assert resp.status_code == 503
    body = resp.json()
    assert body["not_ready"] == ["chain"] and "not answering eth_chainId" in body["checks"]["chain"]["detail"]


def test_readyz_names_a_block_store_it_cannot_write(live: tuple[TestClient, Service, str]) -> None:
    client, service, _ = live
    blocks = service.settings.data_dir / "blocks"
    shutil.rmtree(blocks, ignore_errors=True)
    blocks.write_text("a file where the block store's directory should be")
    resp = client.get("/readyz")
    assert resp.status_code == 503
    body = resp.json()
    assert body["not_ready"] == ["blockstore"] and "cannot create" in body["checks"]["blockstore"]["detail"]


def test_metrics_move_with_ingests_lookups_and_failures(live: tuple[TestClient, Service, str],
                                                        shared_photos: Path) -> None:
    client, service, key = live
    before = scrape(client)
    leaves = value(before, "provenance_log_size")
    data = photo(shared_photos, 2)
    assert _ingest(client, key, data)["state"] == "succeeded"
    assert _ingest(client, key, data)["duplicate"] is True
    service.ledger.checkpoint()
    after = scrape(client)
    for outcome, n in (("appended", 1), ("duplicate", 1)):
        assert value(after, "provenance_ingests_total", outcome=outcome) == \
            value(before, "provenance_ingests_total", outcome=outcome) + n
    assert value(after, "provenance_ingest_duration_seconds_count", outcome="appended") == \
        value(before, "provenance_ingest_duration_seconds_count", outcome="appended") + 1
    assert value(after, "provenance_ingest_queue_depth", state="pending") == 0
    assert value(after, "provenance_index_entries", channel="phash") == 1
    assert value(after, "provenance_log_size") == leaves + 1
    assert value(after, "provenance_checkpoint_tree_size") == leaves + 1
    assert value(after, "provenance_checkpoint_anchored") == 0
    assert value(after, "provenance_log_unanchored_leaves") == leaves + 1
    assert 0 <= value(after, "provenance_checkpoint_age_seconds") < 60

    for query, verdict in ((photo(shared_photos, 2, fmt="JPEG", side=300), "match"),
                           (photo(shared_photos, 20), "no_match")):
        assert client.post("/v1/lookup", files={"file": ("q", query, "image/jpeg")}).json()["verdict"] == verdict
    assert client.post("/v1/lookup", files={"file": ("q", b"GIF89a-not-really", "image/gif")}).status_code == 422
    looked = scrape(client)
    for verdict in ("match", "no_match", "refused"):
        assert value(looked, "provenance_lookups_total", verdict=verdict) == \
            value(after, "provenance_lookups_total", verdict=verdict) + 1, verdict
    assert value(looked, "provenance_lookup_duration_seconds_count", verdict="match") == \
        value(after, "provenance_lookup_duration_seconds_count", verdict="match") + 1

    # A stored image altered on disk: the block store refuses it (500), counted under its part.
    with service.ledger.reader.connect() as conn:
        (record,) = list(service.ledger.store.iter_records(conn))
    blob = next(p for p in (service.settings.data_dir / "blocks").rglob(record.image_cid))
    blob.write_bytes(blob.read_bytes()[:-10] + b"0123456789")
    assert client.get(f"/v1/records/{record.cid}/image").status_code == 500
    assert value(scrape(client), "provenance_errors_total", part="blockstore") == \
        value(looked, "provenance_errors_total", part="blockstore") + 1
