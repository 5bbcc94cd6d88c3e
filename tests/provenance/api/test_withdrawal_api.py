"""What withdrawal means (docs/withdrawal.md; issue 16, finding 12): the signed record stays in the log and auditable,
the image and what is read from it are no longer served (410 Gone)."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from provenance.api.app import create_app
from provenance.api.keys import create_api_key
from provenance.cid import cid_for_bytes
from tests.provenance.api.conftest import assert_error, bearer
from tests.provenance.api.light_service import open_light_service, photo


def test_a_withdrawn_record_stays_auditable_but_its_image_and_manifest_are_gone(tmp_path: Path,
                                                                                shared_photos: Path) -> None:
    service = open_light_service(tmp_path / "data")
    service.ledger.add_publisher("alpha")
    key = create_api_key(service.ledger.engine, "alpha")
    with TestClient(create_app(lambda: service, settings=service.settings, anchor=False)) as client:
        data = photo(shared_photos, 3)
        task_url = client.post("/v1/assets", headers=bearer(key), files={"file": ("a.png", data, "image/png")},
                               data={"metadata": '{"title": "Hats"}'}).json()["status_url"]
        deadline = time.monotonic() + 60
        while (task := client.get(task_url).json())["state"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        cid = task["record_cid"]
        service.ledger.checkpoint()
        image_url = f"/v1/records/{cid}/image"

        live = client.get(image_url)
        assert live.status_code == 200 and live.content == data
        assert "immutable" not in live.headers["cache-control"]  # caches must ask again: withdrawal is possible
        assert client.get(image_url, params={"size": 64}).status_code == 200
        assert client.get(f"/manifests/{cid}").status_code == 200

        assert client.delete(f"/v1/records/{cid}", headers=bearer(key)).json()["withdrawn"] is True

        for url, params in ((image_url, None), (image_url, {"size": 64}), (image_url, {"size": 128}),
                            (f"/manifests/{cid}", None)):
            resp = client.get(url, params=params)
            err = assert_error(resp, 410, "withdrawn")
            assert cid in err["message"] and "stays in the log" in err["message"]
            assert resp.headers["cache-control"] == "no-store"
        # The signed record and its proof still answer: anyone can audit what was registered, and when.
        record = client.get(f"/v1/records/{cid}")
        assert record.status_code == 200 and cid_for_bytes(record.content) == cid
        proof = client.get(f"/v1/records/{cid}/proof").json()
        assert proof["record_cid"] == cid and proof["checkpoint"] is not None
        # ...and lookups no longer name it.
        found = client.post("/v1/lookup", files={"file": ("q.png", data, "image/png")}).json()
        assert found["verdict"] == "no_match" and found["record_cid"] is None
