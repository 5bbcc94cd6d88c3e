"""Every real fixture in ../shared/data/c2pa reads as its ``expected_status.csv`` row says.

The CSV's ``observed_c2pa_python_0_38_1`` column is what c2pa-python 0.38.1 reports, in one of two forms:
``state=<S> manifests=<n> fail=[...] info=[...] ingredient_fail=[...]`` for a readable store, or
``ERROR <exception>: <message>`` otherwise. Mapping to our summary:

* ``state=...``: status ``present``; ``validation_state``, ``failure_codes`` (the active manifest's failures),
  ``ingredient_failure_codes`` as given; the manifest count and informational codes are checked on the full store;
* ``ManifestNotFound``: status ``absent``;
* ``Remote: could not fetch ...`` (the CSV was made with remote fetching on): status ``remote`` with the URL; we
  never fetch, so the same file reads the same offline and online;
* any other ``ERROR``: status ``error`` with c2pa's message.

``has_manifest`` (yes / no / remote) is checked against the status too.
"""

from __future__ import annotations

import ast
import http.server
import io
import re
import threading
from pathlib import Path

import pytest

from provenance.c2pa import C2paManifestUnreadableError, C2paSummary, manifest_store_json, read_c2pa
from provenance.canonical import canonical_json, parse_canonical_json
from tests.provenance.c2pa.conftest import expected_rows

_STATE = re.compile(
    r"^state=(?P<state>\w+) manifests=(?P<n>\d+) fail=(?P<fail>\[.*?\]) info=(?P<info>\[.*?\]) "
    r"ingredient_fail=(?P<ingredient_fail>\[.*?\])$"
)
_ERROR = re.compile(r"^ERROR (?P<cls>\w+): (?P<message>.*)$")

ROWS = expected_rows()


def _dedup(codes: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(codes))


@pytest.mark.parametrize(
    "row",
    ROWS or [pytest.param(None, marks=pytest.mark.skip("no expected_status.csv"))],
    ids=[r["file"] for r in ROWS] or None,
)
def test_fixture_reads_as_expected(row: dict[str, str], c2pa_data: Path) -> None:
    data = (c2pa_data / row["file"]).read_bytes()
    summary = read_c2pa(data)
    observed = row["observed_c2pa_python_0_38_1"].strip()

    if m := _STATE.match(observed):
        assert summary.status == "present", summary
        assert summary.validation_state == m["state"]
        assert summary.failure_codes == _dedup(ast.literal_eval(m["fail"]))
        assert summary.ingredient_failure_codes == _dedup(ast.literal_eval(m["ingredient_fail"]))
        assert summary.active_manifest and summary.signer and summary.claim_generator
        store = manifest_store_json(data)
        assert store is not None and store["active_manifest"] == summary.active_manifest
        assert len(store["manifests"]) == int(m["n"])
        informational = store["validation_results"]["activeManifest"].get("informational", [])
        assert _dedup([e["code"] for e in informational]) == _dedup(ast.literal_eval(m["info"]))
        assert row["has_manifest"] == "yes"
    else:
        m = _ERROR.match(observed)
        assert m, f"unparsed CSV cell {observed!r}"
        assert summary.validation_state is None and summary.active_manifest is None
        if m["cls"].endswith("ManifestNotFound"):
            assert summary.status == "absent" and row["has_manifest"] == "no"
            assert manifest_store_json(data) is None
        elif m["message"].startswith("Remote:"):
            assert summary.status == "remote" and row["has_manifest"] == "remote"
            assert summary.remote_url and summary.remote_url.startswith(("http://", "https://"))
            assert manifest_store_json(data) is None
        else:
            assert summary.status == "error" and row["has_manifest"] == "yes"
            assert summary.error == m["message"]
            with pytest.raises(C2paManifestUnreadableError, match=re.escape(m["message"])):
                manifest_store_json(data)

    # Whatever the outcome, the summary goes into a signed record: canonical JSON, and it round-trips.
    obj = summary.to_obj()
    assert parse_canonical_json(canonical_json(obj)) == obj
    assert C2paSummary.from_obj(obj) == summary


def test_every_fixture_file_has_a_row(c2pa_data: Path) -> None:
    images = {p.name for p in c2pa_data.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")}
    assert images == {r["file"] for r in ROWS}


def test_summary_of_a_signed_fixture(c2pa_data: Path) -> None:
    """C.jpg in detail: the fields a journalist sees."""
    summary = read_c2pa((c2pa_data / "C.jpg").read_bytes(), "image/jpeg")
    assert summary.active_manifest == "contentauth:urn:uuid:b2b1f7fa-b119-4de1-9c0d-c97fbea3f2c3"
    assert summary.claim_generator == "make_test_images/0.33.1 c2pa-rs/0.33.1"
    assert (summary.signer, summary.signer_common_name) == ("C2PA Test Signing Cert", "C2PA Signer")
    assert summary.signed_at == "2024-08-06T21:53:37+00:00"
    assert (summary.title, summary.format, summary.actions) == ("C.jpg", "image/jpeg", ("c2pa.created",))


def test_ingredients_and_their_failures(c2pa_data: Path) -> None:
    summary = read_c2pa((c2pa_data / "CACAE-uri-CA.jpg").read_bytes())
    assert [(i.title, i.relationship, i.format) for i in summary.ingredients] == [
        ("CAE-uri-CA.jpg", "componentOf", "image/jpeg")
    ]
    assert summary.actions == ("c2pa.created", "c2pa.placed", "c2pa.resized")
    assert summary.ingredient_failure_codes == ("signingCredential.untrusted",)


def test_soft_bindings_of_a_real_manifest(c2pa_data: Path) -> None:
    """Adobe's IMG_0003_aca.png carries two soft bindings (TrustMark watermark, ICN fingerprint)."""
    summary = read_c2pa((c2pa_data / "IMG_0003_aca.png").read_bytes())
    assert [s.alg for s in summary.soft_bindings] == ["com.adobe.trustmark.P", "com.adobe.icn.dense"]
    assert summary.soft_bindings[1].value.startswith("0003d2bfe301ff07")
    assert "c2pa.watermarked" in summary.actions
    assert summary.validation_state == "Invalid" and "signingCredential.expired" in summary.failure_codes


def test_remote_manifest_is_never_fetched(c2pa_data: Path) -> None:
    """libpng-test_with_url.png points at http://localhost:5000: fetching would be a request of the uploader's choosing.

    A server listens there; plain c2pa (fetching on) calls it, ``read_c2pa`` does not.
    """
    import c2pa

    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            requests.append(self.path)
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 5000), Handler)
    except OSError as exc:
        pytest.skip(f"port 5000 is busy: {exc}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        data = (c2pa_data / "libpng-test_with_url.png").read_bytes()
        summary = read_c2pa(data)
        assert (summary.status, summary.remote_url) == ("remote", "http://localhost:5000/libpng-test.c2pa")
        assert requests == []
        with pytest.raises(c2pa.C2paError):  # control: the same read with c2pa's defaults does fetch
            c2pa.Reader("image/png", io.BytesIO(data))
        assert requests == ["/libpng-test.c2pa"]
    finally:
        server.shutdown()
        server.server_close()
