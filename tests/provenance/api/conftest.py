"""API test fixtures: the app over a fake service (real ledger, fake lookup/queue), and TestClient helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from provenance.api.app import create_app
from provenance.api.keys import create_api_key
from provenance.config import Settings
from tests.provenance.api.fakes import FakeService, textured_image


@pytest.fixture
def fake_service(tmp_path: Path) -> Iterator[FakeService]:
    service = FakeService.open(tmp_path / "data")
    service.ledger.add_publisher("acme")
    service.ledger.add_publisher("globex")
    yield service
    if not service.closed:
        service.ledger.close()


@pytest.fixture
def make_client(tmp_path: Path, fake_service: FakeService) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def _make(**settings: Any) -> TestClient:
        settings.setdefault("max_image_bytes", 2_000_000)
        app = create_app(lambda: fake_service, settings=Settings(data_dir=tmp_path / "data", **settings),
                         anchor=False)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield _make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def keys(fake_service: FakeService) -> dict[str, str]:
    return {name: create_api_key(fake_service.ledger.engine, name) for name in ("acme", "globex")}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def ingest(client: TestClient, key: str, image: bytes, metadata: str | None = '{"title": "Harbour"}',
           name: str = "photo.png") -> dict[str, Any]:
    """Submit through the API and return the finished task (the fake queue runs synchronously)."""
    data = {"metadata": metadata} if metadata is not None else {}
    resp = client.post("/v1/assets", headers=bearer(key), files={"file": (name, image, "image/png")}, data=data)
    assert resp.status_code == 202, resp.text
    task = client.get(resp.headers["Location"]).json()
    assert task["state"] == "succeeded", task
    return task


@pytest.fixture
def images() -> list[bytes]:
    return [textured_image(seed) for seed in range(3)]


def assert_error(resp: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]
