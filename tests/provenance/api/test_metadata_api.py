"""Publisher metadata is validated at the edge, with one schema for the HTTP API and the CLI's --meta: each hostile
input of the hostile-input test (issue 16, finding 9) gets 422 with the reason, and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from provenance.cli import cli
from provenance.ingest import record_metadata
from tests.provenance.api.conftest import assert_error, bearer, ingest
from tests.provenance.api.fakes import FakeService, textured_image

HOSTILE = [
    pytest.param(json.dumps({f"k{i}": "v" for i in range(10_000)}), "10000 fields exceed the limit of 64",
                 id="10k-keys"),
    pytest.param(json.dumps({"title": "x" * 900_000}), "exceed the limit of 262144", id="900KB-title"),
    pytest.param(json.dumps({"title": "x" * 1_001}), "metadata.title: String should have at most 1000",
                 id="long-title"),
    pytest.param(json.dumps({"desk": "y" * 4_097}), "metadata.extra.desk: String should have at most 4096",
                 id="long-value"),
    pytest.param(json.dumps({"k" * 65: "v"}), "at most 64 characters", id="long-key"),
    pytest.param('{"capture_time": "not a time"}', "capture_time: not an RFC 3339 / ISO 8601 time", id="bad-time"),
    pytest.param('{"title": "first", "title": "second"}', "the key 'title' appears twice", id="duplicate-keys"),
    pytest.param('{"title": "\\ud800"}', "title: not valid UTF-8 text", id="lone-surrogate"),
    pytest.param('{"title": ' + "9" * 5_000 + "}", "metadata.title: must be a string, not a number",
                 id="5000-digit-int"),
    pytest.param('{"title": 1e999}', "must be a string, not a number", id="huge-float"),
    pytest.param('{"title": "a\\u0000b"}', "control character U+0000", id="nul"),
    pytest.param('{"extra": {"a": {"b": "c"}}}', "nested 3 levels deep", id="nested"),
    pytest.param('{"title": ["a"]}', "metadata.title: must be a string", id="list"),
]


def _record_count(service: FakeService) -> int:
    with service.ledger.reader.connect() as conn:
        return service.ledger.store.count(conn)


@pytest.mark.parametrize("metadata, reason", HOSTILE)
def test_hostile_metadata_is_422_with_the_reason_and_writes_nothing(client: TestClient, keys: dict[str, str],
                                                                     fake_service: FakeService, metadata: str,
                                                                     reason: str) -> None:
    resp = client.post("/v1/assets", headers=bearer(keys["acme"]), data={"metadata": metadata},
                       files={"file": ("a.png", textured_image(7), "image/png")})
    err = assert_error(resp, 422, "invalid_metadata")
    assert reason in err["message"], err
    assert len(err["message"]) < 400  # the reason, not the input echoed back
    assert _record_count(fake_service) == 0 and fake_service.queue.tasks == {}


def test_invalid_utf8_bytes_in_the_form_are_refused_not_stored_as_mojibake(client: TestClient,
                                                                          keys: dict[str, str],
                                                                          fake_service: FakeService) -> None:
    boundary = "b0undary"
    image = textured_image(8)
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n".encode()
            + b'{"title": "caf\xe9 \xff"}'  # Latin-1 bytes: not UTF-8
            + f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
              f"Content-Type: image/png\r\n\r\n".encode() + image + f"\r\n--{boundary}--\r\n".encode())
    resp = client.post("/v1/assets", headers={**bearer(keys["acme"]),
                                              "Content-Type": f"multipart/form-data; boundary={boundary}"},
                       content=body)
    err = assert_error(resp, 422, "invalid_metadata")
    assert "not valid UTF-8" in err["message"]
    assert _record_count(fake_service) == 0
    # The same text as UTF-8 is fine, and stored exactly.
    task = ingest(client, keys["acme"], image, metadata='{"title": "café ☕", "capture_time": "2024-05-01T06:12:00Z"}')
    stored = client.get(task["record_url"]).content
    assert record_metadata(stored).to_obj() == {"title": "café ☕", "capture_time": "2024-05-01T06:12:00Z"}


@pytest.mark.parametrize("meta, reason", [
    (["capture_time=not a time"], "not an RFC 3339 / ISO 8601 time"),
    (["title=a", "title=b"], "metadata.title: given twice"),
    (["title=" + "x" * 1_001], "at most 1000 characters"),
    ([f"k{i}=v" for i in range(65)], "65 fields exceed the limit of 64"),
])
def test_the_cli_meta_follows_the_same_rules(tmp_path: Path, shared_photos: Path, meta: list[str],
                                              reason: str) -> None:
    from provenance.config import Settings
    from provenance.services import open_ledger

    data_dir = tmp_path / "data"
    ledger = open_ledger(Settings(data_dir=data_dir))
    ledger.add_publisher("acme")
    ledger.close()
    args = ["--data-dir", str(data_dir), "ingest", str(shared_photos / "kodak24" / "kodim01.png"), "--inline",
            "--publisher", "acme"]
    for pair in meta:
        args += ["--meta", pair]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 2, out.output
    assert reason in out.output and "--meta" in out.output
    ledger = open_ledger(Settings(data_dir=data_dir))
    try:
        with ledger.reader.connect() as conn:
            assert ledger.store.count(conn) == 0
    finally:
        ledger.close()
