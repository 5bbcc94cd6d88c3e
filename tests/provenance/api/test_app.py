"""The app as a whole: OpenAPI docs, the journalist page and its headers, lifespan, nothing built at import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from provenance.api.anchoring import anchor_if_grown, anchor_interval
from provenance.config import Settings
from tests.provenance.api.fakes import FakeService

ROOT = Path(__file__).resolve().parents[3]


def test_openapi_lists_every_route(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {
        "/v1/assets", "/v1/tasks/{task_id}", "/v1/lookup", "/v1/change-maps/{name}", "/v1/records/{cid}",
        "/v1/records/{cid}/proof", "/v1/records/{cid}/bundle", "/v1/records/{cid}/image", "/v1/checkpoints/latest",
        "/matches/byBinding", "/matches/byContent", "/manifests/{manifestId}", "/services/supportedAlgorithms",
        "/healthz", "/readyz", "/checkpoint", "/tile/{tile_path}", "/v1/receipts/{receipt_id}",
        "/v1/publisher", "/v1/key-events", "/v1/admin/publishers",
    }
    assert set(paths["/v1/records/{cid}"]) == {"get", "delete"}
    assert "multipart/form-data" in paths["/v1/assets"]["post"]["requestBody"]["content"]
    assert paths["/v1/assets"]["post"]["security"] == [{"HTTPBearer": []}]


def test_page_and_its_static_files(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<label for="file-input"' in html and 'id="file-input"' in html and 'lang="en"' in html
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    for asset, kind in (("/static/app.js", "javascript"), ("/static/style.css", "text/css")):
        resp = client.get(asset)
        assert resp.status_code == 200 and kind in resp.headers["content-type"]


def test_lifespan_closes_the_service(tmp_path: Path, fake_service: FakeService) -> None:
    from provenance.api.app import create_app

    app = create_app(lambda: fake_service, settings=Settings(data_dir=tmp_path / "data"), anchor=False)
    with TestClient(app):
        assert not fake_service.closed
    assert fake_service.closed


def test_the_server_anchors_only_on_the_embedded_default() -> None:
    assert anchor_interval(Settings(anchor_every_s=7)) == 7  # in-process EVM + queue: nothing else can anchor
    assert anchor_interval(Settings(chain_rpc_url="http://127.0.0.1:8545")) is None  # the anchorer does it
    assert anchor_interval(Settings(queue="celery")) is None  # celery beat does it


def test_anchor_if_grown(fake_service: FakeService) -> None:
    from tests.provenance.api.fakes import textured_image
    from provenance.records import PublisherMetadata

    assert anchor_if_grown(fake_service.ledger) is True  # acme's key registration is the first leaf
    assert anchor_if_grown(fake_service.ledger) is False  # nothing new
    fake_service.ledger.ingest(textured_image(1), publisher="acme", metadata=PublisherMetadata())
    assert anchor_if_grown(fake_service.ledger) is True
    assert anchor_if_grown(fake_service.ledger) is False  # nothing new


def test_importing_the_api_builds_nothing() -> None:
    env = {"PROVENANCE_BLOCKSTORE": "not-valid-at-all", "PATH": "/usr/bin:/bin"}
    code = "import provenance.api, provenance.api.app, provenance.api.cli"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
