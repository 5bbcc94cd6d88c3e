"""The C2PA Soft Binding Resolution API (C2PA 2.x "Decoupled", OpenAPI "C2PA Soft Binding Resolution API" 1.0.0)
over our ledger. Conformance, and each justified departure: docs/c2pa-softbinding.md.

* Algorithms carry their soft binding algorithm list names (``org.provenance-service.oscar-net.1`` ...,
  :mod:`provenance.softbinding.algorithms`); the record-level names (``oscar-net``, ``phash``, ``global-id``) are
  still accepted in queries. Values are base64 of the code's bytes (our hex form is accepted too).
* Manifest ids are C2PA manifest labels, ``urn:c2pa:<uuid>:provenance``, derived from the record CID
  (:mod:`provenance.softbinding.manifest_ids`); ``GET /manifests/{id}`` takes them (and record CIDs).
* ``byBinding`` matches within each algorithm's calibrated cutoff (<= 1e-9 false matches per unrelated pair) and
  scores by that calibration; ``byContent`` runs the lookup's verification and returns only verified records
  (:mod:`provenance.softbinding.matching`).
* Missing or malformed parameters are 400 here (the rest of the API answers 422); a ``byBinding`` query string over
  :data:`MAX_QUERY_BYTES` is 414 (and ``provenance serve`` answers 414 for request lines too long to parse).
* ``PROVENANCE_SOFTBINDING_TOKEN`` set: the matching routes and the manifest stores need ``Authorization: Bearer
  <token>`` (401 otherwise); ``/services/supportedAlgorithms`` and the JSON record view (public anyway at
  ``/v1/records``) stay public. Unset: public, like the ledger. Matching routes share the lookup rate limit.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from provenance.api.deps import ApiContext, ContextDep, ProvenanceService, RateLimited, ServiceDep, client_address
from provenance.api.errors import ApiError, echo
from provenance.api.routes.receipts import RECEIPT_HEADER, receipt_headers
from provenance.api.schemas import SoftBindingAlgList, SoftBindingQuery, SoftBindingQueryResult, errors
from provenance.api.uploads import IMAGE_FIELD, ImageUpload, check_image, check_query_image, form_image, read_form
from provenance.api.withdrawn import refuse_if_withdrawn
from provenance.cid import canonical_cid
from provenance.errors import InvalidCIDError, InvalidImageError
from provenance.index.errors import EmptyIndexError
from provenance.lookup_receipts import answer_with_receipt
from provenance.proofs import get_record
from provenance.records import parse_record, record_view
from provenance.records_store import StoredRecord
from provenance.softbinding.algorithms import SoftBindingAlg, hasher_name
from provenance.softbinding.calibration import calibration_for
from provenance.softbinding.manifest_ids import (cid_prefix_of, is_manifest_urn, manifest_id_for,
                                                 parse_manifest_urn)
from provenance.softbinding.matching import ScoredMatch, binding_matches, rank, verified_sources

MAX_RESULTS_CAP = 100
#: Longest query string ``GET /matches/byBinding`` takes (our longest value is 44 base64 characters): beyond, 414.
MAX_QUERY_BYTES = 2048
C2PA_MEDIA_TYPE = "application/c2pa"
_HEX = re.compile(r"^[0-9a-fA-F]+$")


class SoftBindingRoute(APIRoute):
    """Request validation errors (a missing ``alg``, ``maxResults=0``, a malformed JSON body) are 400 on these
    routes, as the specification says, instead of the 422 the rest of the API answers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                raise ApiError(400, "invalid_request", _validation_message(exc)) from None

        return route


def _validation_message(exc: RequestValidationError) -> str:
    first = next(iter(exc.errors()), {"loc": (), "msg": "invalid request"})
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header"))
    return f"{where}: {first.get('msg', '')}" if where else str(first.get("msg", "invalid request"))


def require_token(request: Request, ctx: ContextDep) -> None:
    """``Authorization: Bearer <PROVENANCE_SOFTBINDING_TOKEN>`` when that token is configured (constant time)."""
    token = ctx.settings.softbinding_token
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode()):
        raise ApiError(401, "unauthorized", "the soft binding resolution API needs Authorization: Bearer <token>",
                       headers={"WWW-Authenticate": 'Bearer realm="c2pa-soft-binding", scope="fetch:manifests"'})


def bounded_query(request: Request) -> None:
    """414 for a query string too long for a binding value (the specification: "consider using POST")."""
    size = len(request.scope.get("query_string", b""))
    if size > MAX_QUERY_BYTES:
        raise ApiError(414, "uri_too_long", f"the query string is {size} bytes, more than the {MAX_QUERY_BYTES} "
                       "this route takes: send large values with POST /matches/byBinding")


Authorized = Depends(require_token)
router = APIRouter(tags=["C2PA soft binding resolution"], route_class=SoftBindingRoute)
MaxResults = Annotated[int, Query(alias="maxResults", ge=1, description="At most this many matches (capped at 100).")]
# Every matching route: the spec's result shape (no null ``endpoint``), rate-limited like lookups.
_MATCHES: dict[str, Any] = {"response_model": SoftBindingQueryResult, "response_model_exclude_none": True,
                            "dependencies": [Authorized, RateLimited]}


# --- algorithms and values --------------------------------------------------------------------------------------
def algorithms(service: ProvenanceService) -> list[SoftBindingAlg]:
    """Every hash channel our records carry, under its list name (no network is loaded to name it)."""
    return [hasher_name(h) for h in service.ledger.hashers]


def resolve_alg(service: ProvenanceService, name: str) -> SoftBindingAlg:
    """The algorithm a query names: a list name, or a record-level name (``phash``); 400 for anything else."""
    known = algorithms(service)
    for a in known:
        if name in (a.name, a.alg):
            return a
    raise ApiError(400, "unsupported_alg", f"unsupported soft binding algorithm {echo(name)}; supported: "
                   f"{', '.join(a.name for a in known)} (GET /services/supportedAlgorithms)")


def decode_value(value: str, bits: int) -> str:
    """The code as lowercase hex from a base64 value (or our hex form); 400 when it is neither."""
    value = value.strip()
    n_bytes = bits // 8
    if len(value) == 2 * n_bytes and _HEX.match(value):
        return value.lower()
    padded = value + "=" * (-len(value) % 4)
    for altchars in (None, b"-_"):  # standard, then URL-safe base64
        try:
            raw = base64.b64decode(padded.encode("ascii"), altchars=altchars, validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            continue
        if len(raw) == n_bytes:
            return raw.hex()
    raise ApiError(400, "invalid_value",
                   f"value must be the base64 of a {bits}-bit code ({n_bytes} bytes) or its {2 * n_bytes}-digit hex")


def _result(matches: list[ScoredMatch], k: int) -> dict[str, Any]:
    return {"matches": [{"manifestId": manifest_id_for(m.record_cid), "similarityScore": m.score}
                        for m in rank(matches, k)]}


# --- byBinding ------------------------------------------------------------------------------------------------------
def _by_binding(service: ProvenanceService, alg: str, value: str, k: int) -> dict[str, Any]:
    chosen = resolve_alg(service, alg)
    code = decode_value(value, chosen.bits)
    k = min(k, MAX_RESULTS_CAP)
    try:
        hits = service.lookup.search(chosen.alg, code, k, model_id=chosen.model_id)
    except EmptyIndexError:
        hits = []
    return _result(binding_matches(hits, calibration_for(chosen.name)), k)


@router.get("/matches/byBinding", **{**_MATCHES, "dependencies": [Depends(bounded_query), *_MATCHES["dependencies"]]},
            responses=errors(400, 401, 414, 429), summary="Manifests matching a soft binding value",
            operation_id="queryByBinding")
def query_by_binding(service: ServiceDep, alg: Annotated[str, Query()], value: Annotated[str, Query()],
                     max_results: MaxResults = 10) -> dict[str, Any]:
    return _by_binding(service, alg, value, max_results)


@router.post("/matches/byBinding", **_MATCHES, responses=errors(400, 401, 408, 413, 429),
             summary="Manifests matching a (large) soft binding value", operation_id="queryByLargeBinding")
def query_by_large_binding(service: ServiceDep, query: SoftBindingQuery,
                           max_results: MaxResults = 10) -> dict[str, Any]:
    return _by_binding(service, query.alg, query.value, max_results)


# --- byContent ------------------------------------------------------------------------------------------------------
def _by_content(ctx: ApiContext, service: ProvenanceService, upload: ImageUpload, alg: SoftBindingAlg | None,
                k: int) -> tuple[dict[str, Any], str]:
    """Run the lookup (with its receipt) and keep the records it verified; the result and the receipt id."""
    verdicts: list[Any] = []

    with ctx.change_maps.workdir() as work:
        def answer() -> dict[str, Any]:
            verdict = service.lookup.lookup(upload.data, change_map_dir=work)
            verdicts.append(verdict)
            return verdict.to_obj()

        _, signed = answer_with_receipt(service, ctx.settings, upload.data, answer)
    calibrations = {a.alg: calibration_for(a.name) for a in algorithms(service)}
    sources = verified_sources(verdicts[0], calibrations, channel=None if alg is None else alg.alg)
    return _result(sources, min(k, MAX_RESULTS_CAP)), signed.receipt_id


@router.post(
    "/matches/byContent", **_MATCHES,
    responses={200: {"headers": {
        RECEIPT_HEADER: {"description": "Id of this answer's signed lookup receipt", "schema": {"type": "string"}},
        "Link": {"description": 'Its permalink: </v1/receipts/ID>; rel="describedby"', "schema": {"type": "string"}},
    }}, **errors(400, 401, 408, 413, 415, 429, 503)}, summary="Manifests of the records an image is a copy of",
    operation_id="uploadFile",
    openapi_extra={"requestBody": {"required": True, "content": {
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {"file": IMAGE_FIELD},
                                           "required": ["file"]}}}}},
)
async def query_by_content(
    request: Request, response: Response, service: ServiceDep, ctx: ContextDep,
    alg: Annotated[str | None, Query(description="Only records this algorithm's index found.")] = None,
    max_results: MaxResults = 10,
    hint_alg: Annotated[str | None, Query(alias="hintAlg")] = None,
    hint_value: Annotated[str | None, Query(alias="hintValue")] = None,
) -> dict[str, Any]:
    """The image is the raw request body (``Content-Type: image/...``, as the specification has it) or the ``file``
    field of a multipart form; its type is sniffed from the bytes. It runs the same lookup as ``POST /v1/lookup``
    (geometric verification, aligned comparison) and answers only the records that verified: copies score 50-100,
    the source of an edited copy 25. A hint is checked (400 when malformed) but adds no unverified record. 415 for
    anything that is not a usable image (not an image, corrupt, too small, too many pixels). The answer's signed
    receipt is named by ``X-Provenance-Receipt-Id`` and linked (``Link: </v1/receipts/ID>; rel="describedby"``)."""
    chosen = resolve_alg(service, alg) if alg is not None else None
    if hint_alg is not None or hint_value is not None:
        if not (hint_alg and hint_value):
            raise ApiError(400, "invalid_request", "hintAlg and hintValue go together")
        decode_value(hint_value, resolve_alg(service, hint_alg).bits)
    try:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await read_form(request, max_fields=1)
            try:
                upload = await form_image(form, max_image_bytes=ctx.max_image_bytes)
            finally:
                await form.close()
        else:
            data = b"".join([chunk async for chunk in request.stream()])
            upload = check_image(data, declared=request.headers.get("content-type"), filename="body",
                                 max_image_bytes=ctx.max_image_bytes)
        check_query_image(upload, service.ledger.config)  # the same checks as POST /v1/lookup
    except ApiError as exc:
        if exc.status == 422:  # an empty body, or no file field: not a usable asset
            raise ApiError(415 if exc.code == "invalid_image" else 400, exc.code, exc.message) from None
        raise
    except InvalidImageError as exc:
        raise ApiError(415, "invalid_image", str(exc)) from None
    async with ctx.work.slot(client_address(request), "byContent"):  # bounded work in flight (workslots.py)
        try:
            result, receipt_id = await run_in_threadpool(_by_content, ctx, service, upload, chosen, max_results)
        except InvalidImageError as exc:  # decodes its header but not its pixels
            raise ApiError(415, "invalid_image", str(exc)) from None
    response.headers.update(receipt_headers(receipt_id))  # the body keeps the spec's schema
    return result


# --- manifests -------------------------------------------------------------------------------------------------------
def find_manifest(service: ProvenanceService, manifest_id: str) -> StoredRecord:
    """The record a manifest id names: one of our ``urn:c2pa:`` labels, or a record CID. 400 malformed, 404
    unknown."""
    if is_manifest_urn(manifest_id):
        try:
            parse_manifest_urn(manifest_id)
        except InvalidCIDError as exc:
            raise ApiError(400, "invalid_manifest_id", str(exc)) from None
        prefix = cid_prefix_of(manifest_id)
        if prefix is not None:
            ledger = service.ledger
            with ledger.reader.connect() as conn:
                for stored in ledger.store.find_by_cid_prefix(conn, prefix):
                    if manifest_id_for(stored.cid).lower() == manifest_id.lower():
                        return stored
        raise ApiError(404, "not_found", f"no manifest {echo(manifest_id)}")
    try:
        cid = canonical_cid(manifest_id)
    except InvalidCIDError as exc:
        raise ApiError(400, "invalid_manifest_id",
                       f"manifestId must be a C2PA manifest identifier (urn:c2pa:...) or a record CID: {exc}") from None
    stored = get_record(service.ledger, cid)
    if stored is None:
        raise ApiError(404, "not_found", f"no manifest {echo(manifest_id)}")
    return stored


def _wants_json(request: Request, manifest_id: str) -> bool:
    """``Accept`` decides; without a preference, a ``urn:c2pa:`` id gets the manifest store and a record CID (the
    id this route took before C2PA manifest ids) our JSON view, as before."""
    accept = request.headers.get("accept", "").lower()
    if C2PA_MEDIA_TYPE in accept:
        return False
    if "application/json" in accept:
        return True
    return not is_manifest_urn(manifest_id)


def _manifest_json(service: ProvenanceService, stored: StoredRecord, active_only: bool) -> dict[str, Any]:
    record = record_view(parse_record(stored.record_bytes))
    store: dict[str, Any] | None = None
    store_error: str | None = None
    summary = record.get("c2pa")
    if isinstance(summary, dict) and summary.get("status") == "present":
        from provenance.c2pa import C2paManifestUnreadableError, manifest_store_json

        image = service.ledger.blockstore.get(stored.image_cid)
        try:
            store = manifest_store_json(image, trust_anchors=getattr(service.pipeline, "c2pa_trust_anchors", None))
        except C2paManifestUnreadableError as exc:
            store_error = str(exc)
        if store is not None and active_only:
            active = store.get("active_manifest")
            store = {"active_manifest": active, "manifest": (store.get("manifests") or {}).get(active)}
    return {"manifestId": manifest_id_for(stored.cid), "record_cid": stored.cid, "record": record,
            "c2pa_manifest_store": store, **({"c2pa_error": store_error} if store_error else {})}


@router.get("/manifests/{manifestId}",
            responses={200: {"content": {C2PA_MEDIA_TYPE: {}, "application/json": {}},
                             "description": "The C2PA manifest store (application/c2pa), or our JSON view"},
                       **errors(400, 401, 404, 410, 503)},
            summary="A record's C2PA manifest store", operation_id="getManifestById")
def get_manifest(
    manifestId: str,  # noqa: N803 - the specification's parameter name
    request: Request,
    service: ServiceDep,
    ctx: ContextDep,
    return_active_manifest: Annotated[bool, Query(alias="returnActiveManifest")] = False,
) -> Response:
    """``application/c2pa``: the manifest store we sign for the record (its soft bindings, record CID and proof
    bundle digest; the publisher's own manifest as its parent ingredient), or 404 ``no_manifest_store`` when this
    service has no C2PA signing certificate. ``application/json``: our record view, with the original's own C2PA
    store as JSON (only its active manifest with ``returnActiveManifest=true``). See ``_wants_json`` for the
    default."""
    if _wants_json(request, manifestId):  # the record view: public, as GET /v1/records/{cid} is (the page uses it)
        stored = find_manifest(service, manifestId)
        refuse_if_withdrawn(service, stored.cid, "its manifest")  # 410 (docs/withdrawal.md)
        return JSONResponse(_manifest_json(service, stored, return_active_manifest))
    require_token(request, ctx)  # the manifest store: the resolution API's token, when one is configured
    stored = find_manifest(service, manifestId)
    refuse_if_withdrawn(service, stored.cid, "its manifest")
    from provenance.softbinding.manifest_store import manifest_stores_for

    data = manifest_stores_for(service, ctx.settings).store_for(stored)
    if data is None:
        raise ApiError(404, "no_manifest_store", "this service signs no C2PA manifests (no "
                       "PROVENANCE_C2PA_SIGNING_CERT): ask with Accept: application/json for the signed record")
    return Response(data, media_type=C2PA_MEDIA_TYPE,
                    headers={"Link": f'</v1/records/{stored.cid}>; rel="describedby"; type="application/json"'})


@router.get("/services/supportedAlgorithms", response_model=SoftBindingAlgList,
            summary="Soft binding algorithms this service resolves", operation_id="getSupportedBindings")
def supported_algorithms(service: ServiceDep) -> dict[str, Any]:
    return {"watermarks": [], "fingerprints": [{"alg": a.name} for a in algorithms(service)]}
