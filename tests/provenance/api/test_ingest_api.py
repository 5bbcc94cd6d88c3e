"""POST /v1/assets and GET /v1/tasks/{id}: authentication, refusals before queueing, and the task's shape."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from provenance.api.keys import revoke_api_key
from tests.provenance.api.conftest import assert_error, bearer, ingest
from tests.provenance.api.fakes import FakeService, textured_image


def _post(client: TestClient, headers: dict[str, str], image: bytes, name: str = "a.png",
          content_type: str = "image/png", metadata: str | None = None):  # type: ignore[no-untyped-def]
    data = {"metadata": metadata} if metadata is not None else {}
    return client.post("/v1/assets", headers=headers, files={"file": (name, image, content_type)}, data=data)


def test_ingest_returns_202_with_a_task_that_ends_with_the_record(client: TestClient, keys: dict[str, str],
                                                                    fake_service: FakeService) -> None:
    resp = _post(client, bearer(keys["acme"]), textured_image(1),
                 metadata='{"title": "Harbour at dawn", "licence": "CC-BY-4.0", "desk": "photo"}')
    assert resp.status_code == 202
    body = resp.json()
    assert set(body) == {"task_id", "state", "status_url"} and body["state"] == "pending"
    assert resp.headers["Location"] == body["status_url"] == f"/v1/tasks/{body['task_id']}"
    task = client.get(body["status_url"]).json()
    assert set(task) == {"task_id", "state", "step", "record_cid", "record_url", "duplicate", "error",
                         "earlier_record_cid", "earlier_publisher", "earlier_leaf_index", "earlier_match",
                         "metadata_conflict"}
    assert task["state"] == "succeeded" and task["duplicate"] is False and task["earlier_record_cid"] is None
    record = fake_service.record(task["record_cid"])
    assert record["publisher"]["id"] == "acme"
    assert record["metadata"] == {"title": "Harbour at dawn", "licence": "CC-BY-4.0", "extra": {"desk": "photo"}}
    assert task["record_url"] == f"/v1/records/{task['record_cid']}"


def test_the_same_image_again_is_a_duplicate(client: TestClient, keys: dict[str, str]) -> None:
    first = ingest(client, keys["acme"], textured_image(2))
    again = ingest(client, keys["acme"], textured_image(2))
    assert again["record_cid"] == first["record_cid"] and again["duplicate"] is True


def test_no_key_is_401_with_a_clear_message(client: TestClient) -> None:
    resp = _post(client, {}, textured_image(1))
    err = assert_error(resp, 401, "unauthorized")
    assert "Authorization: Bearer" in err["message"] and resp.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer prov_0123456789abcdef.notthesecret", "Bearer nonsense", "Basic abc"])
def test_wrong_key_is_401(client: TestClient, keys: dict[str, str], header: str) -> None:
    assert_error(_post(client, {"Authorization": header}, textured_image(1)), 401, "unauthorized")


def test_revoked_key_is_401(client: TestClient, keys: dict[str, str], fake_service: FakeService) -> None:
    key_id = keys["acme"][len("prov_"):].split(".")[0]
    revoke_api_key(fake_service.ledger.engine, key_id)
    err = assert_error(_post(client, bearer(keys["acme"]), textured_image(1)), 401, "unauthorized")
    assert "revoked" in err["message"]


def test_auth_is_checked_before_the_body_is_read(client: TestClient) -> None:
    # No key and a non-image body: 401, not 415 (nothing of the upload was looked at).
    assert_error(_post(client, {}, b"not an image"), 401)


def test_non_image_is_415_whatever_the_declared_type(client: TestClient, keys: dict[str, str]) -> None:
    err = assert_error(_post(client, bearer(keys["acme"]), b"%PDF-1.7 not an image", "x.jpg", "image/jpeg"), 415,
                       "unsupported_media_type")
    assert "declared image/jpeg" in err["message"]
    # a real image declared as text is accepted: the bytes decide
    assert _post(client, bearer(keys["acme"]), textured_image(3), "x.txt", "text/plain").status_code == 202


def test_corrupt_image_is_422_with_the_reason(client: TestClient, keys: dict[str, str]) -> None:
    jpeg = textured_image(4, fmt="JPEG")
    err = assert_error(_post(client, bearer(keys["acme"]), jpeg[: len(jpeg) // 2], "cut.jpg", "image/jpeg"), 422,
                       "invalid_image")
    assert "truncated" in err["message"] or "corrupt" in err["message"]


def test_empty_file_is_422(client: TestClient, keys: dict[str, str]) -> None:
    assert_error(_post(client, bearer(keys["acme"]), b""), 422, "invalid_image")


def test_missing_file_field_is_422(client: TestClient, keys: dict[str, str]) -> None:
    resp = client.post("/v1/assets", headers=bearer(keys["acme"]), files={"other": ("a.png", b"x", "image/png")})
    assert_error(resp, 422, "invalid_request")


def test_not_multipart_is_415(client: TestClient, keys: dict[str, str]) -> None:
    resp = client.post("/v1/assets", headers={**bearer(keys["acme"]), "content-type": "image/png"},
                       content=textured_image(1))
    assert_error(resp, 415, "unsupported_media_type")


@pytest.mark.parametrize("metadata, fragment", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"title": 5}', "metadata.title: must be a string"),
    ('{"extra": {"title": "x"}}', "go at the top level"),
])
def test_bad_metadata_is_422(client: TestClient, keys: dict[str, str], metadata: str, fragment: str) -> None:
    err = assert_error(_post(client, bearer(keys["acme"]), textured_image(1), metadata=metadata), 422,
                       "invalid_metadata")
    assert fragment in err["message"]


def test_unknown_task_is_404(client: TestClient) -> None:
    assert_error(client.get("/v1/tasks/does-not-exist"), 404, "not_found")


def test_image_over_the_image_limit_is_413(make_client, keys: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    client = make_client(max_image_bytes=5_000, api_max_upload_bytes=1_000_000)
    big = textured_image(5, size=(400, 300))
    assert len(big) > 5_000
    assert_error(_post(client, bearer(keys["acme"]), big), 413, "content_too_large")
