"""The first registrant has precedence (issue 16, finding 7), and re-uploads never drop metadata silently: through the
HTTP API over the real ledger, index, lookup and in-process queue (pHash as the deciding hash: see light_service)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from provenance.api.app import create_app
from provenance.api.keys import create_api_key
from provenance.metadata import PublisherMetadata
from provenance.services import Service
from tests.provenance.api.conftest import assert_error, bearer
from tests.provenance.api.light_service import open_light_service, photo


@pytest.fixture
def make_live(tmp_path: Path) -> Iterator[Callable[..., tuple[TestClient, Service, dict[str, str]]]]:
    opened: list[TestClient] = []

    def _make(**settings: Any) -> tuple[TestClient, Service, dict[str, str]]:
        service = open_light_service(tmp_path / "data", **settings)
        keys = {}
        for name in ("alpha", "beta"):
            service.ledger.add_publisher(name)
            keys[name] = create_api_key(service.ledger.engine, name)
        client = TestClient(create_app(lambda: service, settings=service.settings, anchor=False))
        client.__enter__()
        opened.append(client)
        return client, service, keys

    yield _make
    for client in opened:
        client.__exit__(None, None, None)


def _upload(client: TestClient, key: str, data: bytes, metadata: str = '{"title": "Harbour"}') -> Any:
    return client.post("/v1/assets", headers=bearer(key), data={"metadata": metadata},
                       files={"file": ("photo", data, "application/octet-stream")})


def _finished(client: TestClient, resp: Any, timeout_s: float = 60) -> dict[str, Any]:
    assert resp.status_code == 202, resp.text
    deadline = time.monotonic() + timeout_s
    while True:
        task = client.get(resp.json()["status_url"]).json()
        if task["state"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return task
        time.sleep(0.05)


def _records(service: Service) -> int:
    with service.ledger.reader.connect() as conn:
        return service.ledger.store.count(conn)


def test_the_same_bytes_from_another_publisher_are_flagged_and_lookup_names_the_first(make_live, shared_photos):
    client, service, keys = make_live()
    original = photo(shared_photos, 5)
    first = _finished(client, _upload(client, keys["alpha"], original))
    assert first["state"] == "succeeded" and first["earlier_record_cid"] is None
    second = _finished(client, _upload(client, keys["beta"], original))
    assert second["state"] == "succeeded" and second["record_cid"] != first["record_cid"]
    assert (second["earlier_record_cid"], second["earlier_publisher"], second["earlier_match"]) == (
        first["record_cid"], "alpha", "sha256")
    with service.ledger.reader.connect() as conn:
        assert second["earlier_leaf_index"] == service.ledger.store.get(conn, first["record_cid"]).leaf_index

    # A journalist's lookup of a re-shared copy names alpha's record, registered first, and lists beta's.
    reshared = photo(shared_photos, 5, side=320, fmt="JPEG", quality=85)
    body = client.post("/v1/lookup", files={"file": ("q.jpg", reshared, "image/jpeg")}).json()
    assert body["verdict"] == "match", body.get("explanation")
    assert body["record_cid"] == first["record_cid"]
    assert [(r["record_cid"], r["publisher"]) for r in body["also_registered_by"]] == [(second["record_cid"], "beta")]


def test_a_near_duplicate_of_another_publishers_image_is_flagged(make_live, shared_photos):
    client, _, keys = make_live()
    first = _finished(client, _upload(client, keys["alpha"], photo(shared_photos, 5)))
    # Other bytes, same picture: a JPEG re-encode that a lookup verifies as a match.
    copy = _finished(client, _upload(client, keys["beta"], photo(shared_photos, 5, fmt="JPEG", quality=90)))
    assert copy["state"] == "succeeded"
    assert (copy["earlier_record_cid"], copy["earlier_match"]) == (first["record_cid"], "near-duplicate")
    # An unrelated photo of beta's is not flagged.
    other = _finished(client, _upload(client, keys["beta"], photo(shared_photos, 23)))
    assert other["state"] == "succeeded" and other["earlier_record_cid"] is None


def test_the_refuse_policy_answers_409_naming_the_earlier_record(make_live, shared_photos):
    client, service, keys = make_live(ingest_duplicate_policy="refuse")
    first = _finished(client, _upload(client, keys["alpha"], photo(shared_photos, 5)))
    err = assert_error(_upload(client, keys["beta"], photo(shared_photos, 5)), 409, "duplicate_image")
    assert err["record_cid"] == first["record_cid"] and err["publisher"] == "alpha"
    assert first["record_cid"] in err["message"] and "PROVENANCE_INGEST_DUPLICATE_POLICY=refuse" in err["message"]
    assert _records(service) == 1
    # A near-duplicate is only known once hashed: the task fails, naming the earlier record; nothing is appended.
    task = _finished(client, _upload(client, keys["beta"], photo(shared_photos, 5, fmt="JPEG", quality=90)))
    assert task["state"] == "failed" and first["record_cid"] in task["error"] and "near-duplicate" in task["error"]
    assert _records(service) == 1
    # alpha re-uploading its own photo is not a duplicate of anyone else's.
    again = _finished(client, _upload(client, keys["alpha"], photo(shared_photos, 5)))
    assert again["state"] == "succeeded" and again["duplicate"] is True


def test_the_same_bytes_with_other_metadata_are_409_and_the_record_keeps_its_own(make_live, shared_photos):
    client, service, keys = make_live()
    data = photo(shared_photos, 7)
    first = _finished(client, _upload(client, keys["alpha"], data, '{"title": "Harbour"}'))
    err = assert_error(_upload(client, keys["alpha"], data, '{"title": "Another title"}'), 409, "metadata_conflict")
    assert err["record_cid"] == first["record_cid"] and "records are immutable" in err["message"]
    for metadata in ('{"title": "Harbour"}', ""):  # the same metadata, or none: nothing would be dropped
        same = _finished(client, _upload(client, keys["alpha"], data, metadata))
        assert same["record_cid"] == first["record_cid"] and same["duplicate"] is True
        assert not same["metadata_conflict"]
    assert _records(service) == 1
    # When two uploads race past that check, the loser's result says its metadata was not used.
    report = service.pipeline.ingest_report(data, publisher="alpha", metadata=PublisherMetadata(title="Raced"))
    assert report.result.cid == first["record_cid"] and report.result.duplicate and report.metadata_conflict
    assert report.details() == {"metadata_conflict": True}
