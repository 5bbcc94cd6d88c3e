"""The C2PA Soft Binding Resolution API over our ledger.

Our soft bindings are the perceptual hashes in each record (algorithm names as in the records, e.g. ``oscar-net``,
``phash``) and our manifest id is the record's CID. ``similarityScore`` is ``round(100 * (1 - d / bits))`` for the
Hamming distance ``d`` between the query and the record's hash on that channel. Values are base64 of the hash bytes
(big-endian), as the specification asks; the hex form our own ``c2pa.soft-binding`` assertions carry is accepted
too. Only records within a quarter of the bits of the query are matches (``similarityScore`` >= 75). Matching
endpoints are public and share the lookup rate limit.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from provenance.api.deps import ContextDep, ProvenanceService, RateLimited, ServiceDep, client_address
from provenance.api.errors import ApiError, echo
from provenance.api.routes.receipts import RECEIPT_HEADER, receipt_headers
from provenance.proofs import get_record
from provenance.records import parse_record, record_view
from provenance.api.schemas import SoftBindingAlgList, SoftBindingQuery, SoftBindingQueryResult, errors
from provenance.api.uploads import IMAGE_FIELD, ImageUpload, check_image, check_query_image, form_image, read_form
from provenance.api.withdrawn import refuse_if_withdrawn
from provenance.cid import canonical_cid
from provenance.errors import InvalidCIDError
from provenance.images import QUERY_DECODE_SIDE, QueryImage, decode_query
from provenance.index.errors import EmptyIndexError
from provenance.lookup_receipts import answer_with_receipt

router = APIRouter(tags=["C2PA soft binding resolution"])

MAX_RESULTS_CAP = 100
# Nearest neighbours farther than this share of the bits are not plausible copies (unrelated images sit near 1/2):
# they are left out rather than reported with a low score.
MAX_DISTANCE_SHARE = 0.25
MaxResults = Annotated[int, Query(alias="maxResults", ge=1, description="At most this many matches (capped at 100).")]
_HEX = re.compile(r"^[0-9a-fA-F]+$")
# Every matching route: the spec's result shape (no null ``endpoint``), rate-limited like lookups.
_MATCHES: dict[str, Any] = {"response_model": SoftBindingQueryResult, "response_model_exclude_none": True,
                            "dependencies": [RateLimited]}


def supported_algs(service: ProvenanceService) -> dict[str, int]:
    """Soft binding algorithm name -> hash bits, for every hash channel our records carry."""
    return {h.alg: int(h.bits) for h in service.ledger.hashers}


def _check_alg(service: ProvenanceService, alg: str) -> int:
    algs = supported_algs(service)
    if alg not in algs:
        raise ApiError(400, "unsupported_alg", f"unsupported soft binding algorithm {echo(alg)}; supported: "
                       f"{', '.join(sorted(algs))} (GET /services/supportedAlgorithms)")
    return algs[alg]


def decode_value(value: str, bits: int) -> str:
    """The hash as lowercase hex from a base64 value (or our hex form); 400 when it is neither."""
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
                   f"value must be the base64 of a {bits}-bit hash ({n_bytes} bytes) or its {2 * n_bytes}-digit hex")


def similarity(distance: int, bits: int) -> int:
    return max(0, min(100, round(100 * (1 - distance / bits))))


def _search_distances(service: ProvenanceService, alg: str, value_hex: str, k: int) -> dict[str, int]:
    """Records within ``MAX_DISTANCE_SHARE`` of ``bits`` of the query on channel ``alg``: CID -> Hamming distance."""
    bits = supported_algs(service)[alg]
    try:
        hits = service.lookup.search(alg, value_hex, k)
    except EmptyIndexError:
        return {}
    found: dict[str, int] = {}
    for cid, distance in hits:
        if int(distance) <= bits * MAX_DISTANCE_SHARE:
            found[cid] = min(int(distance), found.get(cid, bits))
    return found


def _search(service: ProvenanceService, alg: str, value_hex: str, k: int) -> dict[str, int]:
    """Records within ``MAX_DISTANCE_SHARE`` of ``bits`` of the query on channel ``alg``: CID -> similarityScore."""
    bits = supported_algs(service)[alg]
    return {cid: similarity(d, bits) for cid, d in _search_distances(service, alg, value_hex, k).items()}


def _result(found: dict[str, int], k: int) -> dict[str, Any]:
    ranked = sorted(found.items(), key=lambda item: (-item[1], item[0]))[:k]
    return {"matches": [{"manifestId": cid, "similarityScore": score} for cid, score in ranked]}


def _by_binding(service: ProvenanceService, alg: str, value: str, k: int) -> dict[str, Any]:
    bits = _check_alg(service, alg)
    k = min(k, MAX_RESULTS_CAP)
    return _result(_search(service, alg, decode_value(value, bits), k), k)


@router.get("/matches/byBinding", **_MATCHES, responses=errors(400, 429),
            summary="Manifests matching a soft binding value", operation_id="queryByBinding")
def query_by_binding(service: ServiceDep, alg: Annotated[str, Query()], value: Annotated[str, Query()],
                     max_results: MaxResults = 10) -> dict[str, Any]:
    return _by_binding(service, alg, value, max_results)


@router.post("/matches/byBinding", **_MATCHES, responses=errors(400, 408, 413, 429),
             summary="Manifests matching a (large) soft binding value", operation_id="queryByLargeBinding")
def query_by_large_binding(service: ServiceDep, query: SoftBindingQuery,
                           max_results: MaxResults = 10) -> dict[str, Any]:
    return _by_binding(service, query.alg, query.value, max_results)


def _decode_query(service: ProvenanceService, upload: ImageUpload) -> QueryImage:
    """The same checks and bounded decode as ``POST /v1/lookup`` (``provenance.images.decode_query``): each side at
    least 32 px, within the limits, decoded shrunk to the lookup's bound; the hashers get ``hash_input``."""
    cfg = service.ledger.config
    max_side = getattr(service.lookup, "decode_max_side", QUERY_DECODE_SIDE)
    return decode_query(upload.data, max_bytes=cfg.max_image_bytes, max_pixels=cfg.max_image_pixels,
                        name=upload.filename, max_side=max_side)


def _by_content(service: ProvenanceService, upload: ImageUpload, alg: str | None, k: int,
                hint_alg: str | None, hint_value: str | None) -> dict[str, Any]:
    """The spec's result, plus what its receipt records: ``verdict`` (``soft_binding_match`` when anything matched,
    else ``no_match``), the best match as ``record_cid``, the query's ``hashes`` and each match's ``distances``."""
    k = min(k, MAX_RESULTS_CAP)
    if alg is not None:
        _check_alg(service, alg)
    query = _decode_query(service, upload)
    found: dict[str, int] = {}
    hashes: dict[str, str] = {}
    distances: dict[str, dict[str, int]] = {}
    for hasher in service.ledger.hashers:
        if alg is not None and hasher.alg != alg:
            continue
        code = hasher.hash_image(query.hash_input)
        hashes[code.alg] = code.value
        for cid, d in _search_distances(service, code.alg, code.value, k).items():
            found[cid] = max(similarity(d, int(hasher.bits)), found.get(cid, 0))
            distances.setdefault(cid, {})[code.alg] = d
    if hint_alg and hint_value:
        bits = _check_alg(service, hint_alg)
        for cid, score in _search(service, hint_alg, decode_value(hint_value, bits), k).items():
            found[cid] = max(score, found.get(cid, 0))
    result = _result(found, k)
    matched = [m["manifestId"] for m in result["matches"]]
    return {**result, "verdict": "soft_binding_match" if matched else "no_match",
            "record_cid": matched[0] if matched else None, "hashes": hashes,
            "candidates": [{"record_cid": cid, "distances": distances.get(cid, {})} for cid in matched]}


@router.post(
    "/matches/byContent", **_MATCHES,
    responses={200: {"headers": {
        RECEIPT_HEADER: {"description": "Id of this answer's signed lookup receipt", "schema": {"type": "string"}},
        "Link": {"description": 'Its permalink: </v1/receipts/ID>; rel="describedby"', "schema": {"type": "string"}},
    }}, **errors(400, 408, 413, 415, 422, 429, 503)}, summary="Manifests matching an uploaded image",
    operation_id="uploadFile",
    openapi_extra={"requestBody": {"required": True, "content": {
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {"file": IMAGE_FIELD},
                                           "required": ["file"]}}}}},
)
async def query_by_content(
    request: Request, response: Response, service: ServiceDep, ctx: ContextDep,
    alg: Annotated[str | None, Query(description="Hash only with this algorithm (default: every one we have).")] = None,
    max_results: MaxResults = 10,
    hint_alg: Annotated[str | None, Query(alias="hintAlg")] = None,
    hint_value: Annotated[str | None, Query(alias="hintValue")] = None,
) -> dict[str, Any]:
    """The image is the raw request body (``Content-Type: image/...``, as the specification has it) or the ``file``
    field of a multipart form. Its type is sniffed from the bytes. The answer's signed receipt is named by the
    ``X-Provenance-Receipt-Id`` header and linked (``Link: </v1/receipts/ID>; rel="describedby"``)."""
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
    check_query_image(upload, service.ledger.config)  # the same checks as POST /v1/lookup (422)
    async with ctx.work.slot(client_address(request), "byContent"):  # bounded work in flight (workslots.py)
        answer, signed = await run_in_threadpool(
            answer_with_receipt, service, ctx.settings, upload.data,
            lambda: _by_content(service, upload, alg, max_results, hint_alg, hint_value))
    response.headers.update(receipt_headers(signed.receipt_id))  # the body keeps the spec's schema
    return {"matches": answer["matches"]}


def _manifest(service: ProvenanceService, manifest_id: str, active_only: bool) -> dict[str, Any]:
    try:
        cid = canonical_cid(manifest_id)
    except InvalidCIDError as exc:
        raise ApiError(400, "invalid_manifest_id", f"manifestId must be a record CID: {exc}") from None
    stored = get_record(service.ledger, cid)
    if stored is None:
        raise ApiError(404, "not_found", f"no manifest {echo(manifest_id)}")
    refuse_if_withdrawn(service, stored.cid, "its manifest")  # 410 (docs/withdrawal.md)
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
    return {"manifestId": cid, "record": record, "c2pa_manifest_store": store,
            **({"c2pa_error": store_error} if store_error else {})}


@router.get("/manifests/{manifestId}", responses=errors(400, 404, 410, 503), summary="A manifest: our signed record",
            operation_id="getManifestById")
def get_manifest(
    manifestId: str,  # noqa: N803 - the specification's parameter name
    service: ServiceDep,
    return_active_manifest: Annotated[bool, Query(alias="returnActiveManifest")] = False,
) -> dict[str, Any]:
    """Our manifest is the ledger record (JSON, not ``application/c2pa``). When the registered original carried a
    C2PA manifest store, it comes along as ``c2pa_manifest_store`` (only the active manifest with
    ``returnActiveManifest=true``)."""
    return _manifest(service, manifestId, return_active_manifest)


@router.get("/services/supportedAlgorithms", response_model=SoftBindingAlgList,
            summary="Soft binding algorithms this service resolves", operation_id="getSupportedBindings")
def supported_algorithms(service: ServiceDep) -> dict[str, Any]:
    return {"watermarks": [], "fingerprints": [{"alg": alg} for alg in supported_algs(service)]}
