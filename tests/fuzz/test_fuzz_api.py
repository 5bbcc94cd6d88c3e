"""Every API route's parameters, fuzzed through the real app (``create_app``) over the API tests' fake service (a
real ledger: SQLite, local block store, pHash; a fake lookup and a synchronous queue). Each example is one request:
a route's method (or another), its path with each segment from real values (record and key-event CIDs, task and
receipt ids, tile paths), mutated or random; known and unknown query parameters with random values; no, a valid, a
foreign or a garbage API key (and the admin token); a body that fits the route (JSON mutated from real ones,
multipart forms with mutated images, metadata and statements, raw image bytes) or not. Any 5xx, and any exception
that escapes the app, is a bug."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import example, given
from hypothesis import strategies as st

from provenance import keyevents
from provenance.api.app import create_app
from provenance.api.keys import create_api_key
from provenance.config import Settings
from provenance.statements import key_id_for
from tests.fuzz.conftest import FuzzStats, budget
from tests.fuzz.mutations import mutate_json, mutated_images, to_json_bytes
from tests.fuzz.seeds import image_seeds
from tests.provenance.api.fakes import FakeService, textured_image

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on the mutated images

ADMIN_TOKEN = "fuzz-admin-token-0123456789"
IMAGES = {k: v for k, v in image_seeds().items() if k in ("png-rgb", "jpeg-baseline", "gif-animated", "webp-lossy")}
# Query images must be at least 32 px a side: a 64x48 photo is; the seeds above are.
ROUTES: tuple[tuple[str, str], ...] = (
    ("POST", "/v1/assets"), ("GET", "/v1/tasks/{task_id}"), ("POST", "/v1/lookup"),
    ("GET", "/v1/change-maps/{name}"), ("GET", "/v1/records/{cid}"), ("DELETE", "/v1/records/{cid}"),
    ("GET", "/v1/records/{cid}/proof"), ("GET", "/v1/records/{cid}/bundle"), ("GET", "/v1/records/{cid}/image"),
    ("GET", "/v1/checkpoints/latest"), ("GET", "/matches/byBinding"), ("POST", "/matches/byBinding"),
    ("POST", "/matches/byContent"), ("GET", "/manifests/{manifestId}"), ("GET", "/services/supportedAlgorithms"),
    ("GET", "/checkpoint"), ("GET", "/tile/{tile_path}"), ("GET", "/healthz"), ("GET", "/readyz"),
    ("GET", "/metrics"), ("GET", "/v1/receipts/{receipt_id}"), ("GET", "/v1/publisher"), ("POST", "/v1/key-events"),
    ("POST", "/v1/admin/publishers"), ("GET", "/"), ("GET", "/docs"), ("GET", "/openapi.json"),
    ("GET", "/static/{static}"),
)
QUERY = {
    "/v1/records/{cid}/bundle": ("tree_size",), "/v1/records/{cid}/image": ("size",),
    "/matches/byBinding": ("alg", "value", "maxResults"), "/matches/byContent": ("alg", "maxResults", "hintAlg",
                                                                                 "hintValue"),
    "/manifests/{manifestId}": ("returnActiveManifest",),
}


@dataclass
class ApiWorld:
    client: TestClient
    key: str
    other_key: str
    values: dict[str, list[str]]  # path parameter -> real values
    events: dict[str, Any]  # seeds for POST /v1/key-events
    statement: dict[str, Any]


@pytest.fixture(scope="module")
def api_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiWorld]:
    data_dir = tmp_path_factory.mktemp("fuzz-api") / "data"
    service = FakeService.open(data_dir)
    service.ledger.add_publisher("acme")
    service.ledger.add_publisher("globex")
    key, other = create_api_key(service.ledger.engine, "acme"), create_api_key(service.ledger.engine, "globex")
    settings = Settings(data_dir=data_dir, max_image_bytes=2_000_000, api_lookup_burst=1_000_000,
                        api_lookup_rate_per_s=1000, api_image_burst=1_000_000, api_image_rate_per_s=1000,
                        admin_token=ADMIN_TOKEN, api_heavy_wait_s=0)
    app = create_app(lambda: service, settings=settings, anchor=False)
    with TestClient(app) as client:
        auth = {"Authorization": f"Bearer {key}"}
        tasks, cids = [], []
        for seed in (1, 2):
            resp = client.post("/v1/assets", headers=auth, files={"file": ("p.png", textured_image(seed), "image/png")},
                               data={"metadata": json.dumps({"title": f"Photo {seed}"})})
            assert resp.status_code == 202, resp.text
            tasks.append(resp.json()["task_id"])
            cids.append(client.get(resp.headers["Location"]).json()["record_cid"])
        lookup = client.post("/v1/lookup", files={"file": ("q.png", textured_image(1), "image/png")})
        assert lookup.status_code == 200, lookup.text
        receipt = lookup.json().get("receipt_id") or lookup.headers.get("x-provenance-receipt-id", "")
        service.ledger.anchor()
        custodial = service.ledger.keyring.publisher_key("acme")
        kid = key_id_for(custodial.public_key())
        events = {"withdrawal": keyevents.withdrawal("acme", cids[1], custodial, reason="fuzz").to_obj(),
                  "revocation": keyevents.revocation("acme", kid, custodial, reason="fuzz").to_obj()}
        statement = {"type": "provenance-statement/v1", "image": {"sha256": "0" * 64, "cid": cids[0],
                                                                   "media_type": "image/png"},
                     "metadata": {"title": "t"}, "publisher": {"id": "acme", "key_id": kid},
                     "issued_at": "2026-01-01T00:00:00Z",
                     "signature": {"alg": "ed25519", "key_id": kid, "value": "AAAA"}}
        values = {"cid": cids, "manifestId": cids, "task_id": tasks, "receipt_id": [receipt] if receipt else [],
                  "tile_path": ["tile/0/000.p/5", "tile/entries/000.p/5", "tile/0/000", "tile/1/x001/234"],
                  "name": ["0123456789abcdefABCD.png"], "static": ["app.js", "style.css", "../app.py"]}
        yield ApiWorld(client, key, other, values, events, statement)
    service.ledger.close()


# --- request strategies ---------------------------------------------------------------------------------------------
_nasty = st.sampled_from(("", ".", "..", "%2e%2e", "../../etc/passwd", "%00", "\x00", "a" * 3000, "-1", "0",
                          "99999999999999999999999", "1e9", "null", "true", "[]", "{}", "\u2014", "\ud800", "%",
                          "x001/x234/067", "bafkrei", "BAFKREI", "Qm" + "1" * 44, "?a=b", "#frag", " "))


def _quote(text: str) -> str:
    return urllib.parse.quote(text.encode("utf-8", "surrogatepass"), safe="/")


@st.composite
def segment(draw: st.DrawFn, real: list[str]) -> str:
    choice = draw(st.integers(0, 5))
    if real and choice <= 2:
        value = draw(st.sampled_from(real))
        if choice == 2:  # a real value, changed
            at = draw(st.integers(0, len(value)))
            value = value[:at] + draw(st.text(max_size=3)) + value[at + draw(st.integers(0, 3)):]
        return _quote(value)
    if choice == 3:
        return _quote(draw(_nasty))
    return _quote(draw(st.text(max_size=30)))


def _param_value(draw: st.DrawFn, name: str) -> str:
    known = {"alg": ("phash", "oscar-net", "global-id", "PHASH", ""), "hintAlg": ("phash", "nope"),
             "value": ("AAAAAAAAAAA=", "AAAAAAAAAAAA", "////////////", "not base64", "AA=="),
             "hintValue": ("AAAAAAAAAAA=", "=="), "maxResults": ("1", "0", "-1", "100", "1000000", "1.5", "x"),
             "size": ("64", "100", "1024", "0", "-5", "99999999", "2048", "abc"),
             "tree_size": ("1", "0", "3", "-1", "18446744073709551616", "x"),
             "returnActiveManifest": ("true", "false", "1", "yes", "maybe")}
    if name in known and draw(st.booleans()):
        return draw(st.sampled_from(known[name]))
    return draw(st.one_of(_nasty, st.text(max_size=20), st.integers(-(2**70), 2**70).map(str)))


def _multipart(draw: st.DrawFn, world: ApiWorld) -> tuple[dict[str, Any], dict[str, Any]]:
    files: dict[str, Any] = {}
    data: dict[str, Any] = {}
    if draw(st.integers(0, 5)):
        image = draw(st.one_of(st.sampled_from(sorted(IMAGES.values())), mutated_images(IMAGES),
                               st.binary(max_size=64)))
        name = draw(st.sampled_from(("p.png", "", "../x.jpg", "a" * 300, "\u00e9.gif")))
        files[draw(st.sampled_from(("file", "file", "image", "")))] = (name, image, draw(st.sampled_from(
            ("image/png", "image/jpeg", "application/octet-stream", "text/plain", ""))))
    if draw(st.booleans()):
        meta = mutate_json(draw, {"title": "Harbour", "extra": {"desk": "photo"}}) if draw(st.booleans()) else \
            draw(st.text(max_size=40))
        data["metadata"] = meta if isinstance(meta, str) else to_json_bytes(meta, False).decode("utf-8", "replace")
    if draw(st.integers(0, 4)) == 0:
        data["statement"] = to_json_bytes(mutate_json(draw, world.statement), False).decode("utf-8", "replace")
    if draw(st.integers(0, 5)) == 0:
        data[draw(st.text(max_size=8))] = draw(st.text(max_size=20))
    # as bytes, so that lone surrogates go on the wire as the invalid UTF-8 a hostile client would send
    return files, {k: v.encode("utf-8", "surrogatepass") for k, v in data.items()}


@dataclass
class Call:
    method: str
    url: str
    headers: dict[str, str]
    kwargs: dict[str, Any]

    def __repr__(self) -> str:
        body = {k: (v if k != "files" else {f: (n, len(b), t) for f, (n, b, t) in v.items()})
                for k, v in self.kwargs.items()}
        return f"{self.method} {self.url[:300]} headers={self.headers} {str(body)[:300]}"


@st.composite
def calls(draw: st.DrawFn, world: ApiWorld) -> Call:
    method, template = draw(st.sampled_from(ROUTES))
    if draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD")))
    path = template
    for name in ("task_id", "name", "cid", "manifestId", "receipt_id"):
        path = path.replace("{" + name + "}", draw(segment(world.values.get(name, []))))
    if "{tile_path}" in path:
        real = world.values["tile_path"]
        tile = draw(st.sampled_from(real)) if draw(st.booleans()) else draw(st.from_regex(
            r"tile/(entries|[0-9]{1,3})(/x?[0-9]{1,4}){1,5}(\.p/[0-9]{1,4})?", fullmatch=True))
        path = path.replace("{tile_path}", tile.removeprefix("tile/") if draw(st.booleans()) else _quote(tile))
        path = path.replace("/tile/tile/", "/tile/")
    path = path.replace("{static}", draw(segment(world.values["static"])))
    params: list[tuple[str, str]] = []
    for name in QUERY.get(template, ()):
        if draw(st.integers(0, 3)):
            params.append((name, _param_value(draw, name)))
    for _ in range(draw(st.integers(0, 2))):
        params.append((draw(st.sampled_from((*QUERY.get(template, ()), "x", "size", ""))), _param_value(draw, "")))
    url = path + ("?" + urllib.parse.urlencode([(k, v.encode("utf-8", "surrogatepass")) for k, v in params])
                  if params else "")
    headers: dict[str, str] = {}
    auth = draw(st.sampled_from(("key", "key", "other", "garbage", "none", "admin")))
    if auth != "none":
        token = {"key": world.key, "other": world.other_key, "admin": ADMIN_TOKEN}.get(auth) or draw(
            st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=40))
        headers["Authorization"] = draw(st.sampled_from(("Bearer ", "bearer ", "Basic ", ""))) + token
    if draw(st.integers(0, 5)) == 0:
        headers["X-Forwarded-For"] = draw(st.sampled_from(("1.2.3.4", "::1", "garbage", "1.2.3.4, 5.6.7.8", "")))
    kwargs: dict[str, Any] = {}
    body_kind = draw(st.sampled_from(("none", "json", "json", "multipart", "multipart", "raw", "image")))
    if method in ("GET", "HEAD", "OPTIONS") and draw(st.integers(0, 4)):
        body_kind = "none"
    if body_kind == "json":
        seeds: dict[str, Any] = {"binding": {"alg": "phash", "value": "AAAAAAAAAAA="},
                                 "admin": {"name": "newcomer", "public_key": "-----BEGIN PUBLIC KEY-----\nAA==\n"
                                                                             "-----END PUBLIC KEY-----\n"},
                                 **world.events}
        seed = seeds[draw(st.sampled_from(sorted(seeds)))]
        obj = seed if draw(st.integers(0, 3)) == 0 else mutate_json(draw, seed)
        kwargs["content"] = to_json_bytes(obj, False)
        headers["Content-Type"] = draw(st.sampled_from(("application/json", "application/json; charset=utf-8",
                                                        "application/merge-patch+json", "text/json")))
    elif body_kind == "multipart":
        files, data = _multipart(draw, world)
        if files:
            kwargs["files"] = files
        if data:
            kwargs["data"] = data
        if not files and not data:
            kwargs["content"] = b""
            headers["Content-Type"] = "multipart/form-data; boundary=x"
    elif body_kind == "raw":
        kwargs["content"] = draw(st.binary(max_size=200))
        if draw(st.booleans()):
            headers["Content-Type"] = draw(st.sampled_from(("application/json", "image/png", "multipart/form-data",
                                                            "text/plain", "application/octet-stream")))
    elif body_kind == "image":
        kwargs["content"] = draw(st.one_of(st.sampled_from(sorted(IMAGES.values())), mutated_images(IMAGES)))
        headers["Content-Type"] = draw(st.sampled_from(("image/png", "image/jpeg", "image/*", "image/webp")))
    return Call(method, url, headers, kwargs)


# --- the target ----------------------------------------------------------------------------------------------------
def _send(client: TestClient, call: Call) -> int:
    resp = client.request(call.method, call.url, headers=call.headers, **call.kwargs)
    if resp.status_code >= 500:
        raise AssertionError(f"{call!r} -> {resp.status_code}: {resp.text[:300]}")
    return resp.status_code


def test_fuzz_every_route(api_world: ApiWorld, fuzz_stats: FuzzStats) -> None:
    statuses: dict[int, int] = {}

    @budget(400)
    @given(call=calls(api_world))
    @example(call=Call("POST", "/matches/byBinding", {"Content-Type": "application/json"},
                       {"content": b'{"alg":"phash","value":"AAAAAAAAAAA=","x":' + b"[" * 100_000 + b"]" * 100_000 +
                        b"}"}))
    def run(call: Call) -> None:
        status = fuzz_stats.run("api", lambda: _send(api_world.client, call), given=call)
        if status is not None:
            statuses[status] = statuses.get(status, 0) + 1

    run()
    print("api statuses:", dict(sorted(statuses.items())))
    # the budget reached past the edge: requests were accepted, refused as bad input, and not found
    assert {200, 404} <= set(statuses) and any(400 <= s < 500 and s != 404 for s in statuses), statuses
