"""Public lookup: ``POST /v1/lookup`` (an image in, the verdict with its evidence out) and the change maps it makes."""

from __future__ import annotations

import inspect
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from provenance.api.deps import ApiContext, ContextDep, ProvenanceService, RateLimited, ServiceDep, client_address
from provenance.api.errors import ApiError, echo
from provenance.records import parse_record, record_view
from provenance.proofs import get_record, record_proof
from provenance.api.schemas import errors
from provenance.api.uploads import (IMAGE_FIELD, ImageUpload, check_query_image, form_image, multipart_openapi,
                                    read_form)
from provenance.api.routes.receipts import receipt_url
from provenance.logging import get_logger
from provenance.metrics import observe_lookup
from provenance.lookup_receipts import answer_with_receipt

log = get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["lookup"])


def query_c2pa(service: ProvenanceService, upload: ImageUpload) -> dict[str, Any]:
    """What the *query* image's own Content Credentials say (never fetched from elsewhere)."""
    from provenance.c2pa import read_c2pa

    anchors = getattr(service.pipeline, "c2pa_trust_anchors", None)
    return read_c2pa(upload.data, upload.media_type, trust_anchors=anchors).to_obj()


@lru_cache(maxsize=8)
def _takes_change_map_dir(lookup_type: type) -> bool:
    try:
        return "change_map_dir" in inspect.signature(lookup_type.lookup).parameters
    except (TypeError, ValueError):
        return False


def run_lookup(ctx: ApiContext, service: ProvenanceService, upload: ImageUpload) -> dict[str, Any]:
    """The verdict (the keys of ``provenance lookup --json``, with its signed ``receipt``) plus the matched record,
    its proof, the query's C2PA summary, the receipt's permalink and, for an altered copy, where to fetch the change
    map."""
    with ctx.change_maps.workdir() as work:
        def answer() -> dict[str, Any]:
            if _takes_change_map_dir(type(service.lookup)):
                return service.lookup.lookup(upload.data, change_map_dir=work).to_obj()
            return service.lookup.lookup(upload.data).to_obj()  # it writes into its own configured directory

        result, signed = answer_with_receipt(service, ctx.settings, upload.data, answer)
        produced = result.get("change_map")
        name = ctx.change_maps.publish(produced) if produced and Path(produced).is_file() else None
    result["change_map"] = name  # a public name, never a server path
    result["change_map_url"] = f"/v1/change-maps/{name}" if name else None
    cid = result.get("record_cid")
    stored = get_record(service.ledger, cid) if cid else None
    result["record"] = record_view(parse_record(stored.record_bytes)) if stored else None
    result["proof"] = record_proof(service.ledger, cid) if stored and cid else None
    result["c2pa"] = query_c2pa(service, upload)
    result["receipt_url"] = receipt_url(signed.receipt_id)
    log.info("api.lookup", verdict=result.get("verdict"), record_cid=cid, bytes=len(upload.data))
    return result


@router.post(
    "/lookup",
    dependencies=[RateLimited],
    responses=errors(400, 408, 413, 415, 422, 429, 503),
    openapi_extra=multipart_openapi({"file": IMAGE_FIELD}, ["file"]),
    summary="Where does this image come from, and was it changed?",
)
async def lookup(request: Request, service: ServiceDep, ctx: ContextDep) -> dict[str, Any]:
    """``verdict`` is ``match`` (a registered image, possibly re-encoded, resized or cropped), ``altered`` (a
    registered image whose content was changed: see ``change_map_url``), ``same_scene`` (another photo of a
    registered image's scene, not a copy of it: ``record_cid`` is a lead, never a claim of editing) or
    ``no_match``; ``confidence`` is the calibrated probability that the verdict is right and ``confident: false``
    means the evidence is weak either way (a person should look; docs/verdicts.md); a ``match`` compared at a small
    size carries ``unseen_below``, the share of the picture under which an edit could go unseen there. With a match
    come the signed ``record``, its ``proof`` (inclusion in the latest signed checkpoint and that checkpoint's chain
    anchor) and ``c2pa``, the query image's own Content Credentials. Every answer carries a ``receipt`` signed with the
    log's key (docs/receipts.md), kept at ``receipt_url``. Public; rate-limited per client IP."""
    form = await read_form(request, max_fields=1)
    try:
        upload = await form_image(form, max_image_bytes=ctx.max_image_bytes)
    finally:
        await form.close()
    with observe_lookup() as seen:  # provenance_lookups_total / _duration_seconds by verdict (refused, busy too)
        check_query_image(upload, service.ledger.config)  # one set of checks for every image query (422)
        # A work slot bounds lookups in flight, per client and overall (429 / 503 + Retry-After; workslots.py).
        async with ctx.work.slot(client_address(request), "lookup"):
            result = await run_in_threadpool(run_lookup, ctx, service, upload)
            seen.verdict = str(result.get("verdict"))
    return result


@router.get("/change-maps/{name}", response_class=FileResponse, responses={
    200: {"content": {"image/png": {}}, "description": "The change map (PNG)"}, **errors(404)},
    summary="A change map made by a lookup")
def change_map(name: str, ctx: ContextDep) -> FileResponse:
    path = ctx.change_maps.path_for(name)
    if path is None:
        raise ApiError(404, "not_found", f"no change map {echo(name)} (they expire after {ctx.change_maps.ttl_s:g} s)")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
