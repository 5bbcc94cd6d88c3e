"""Records, their proofs and images, the latest checkpoint, and withdrawal by the owning publisher."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from provenance.api.deps import ContextDep, ImageRateLimited, PublisherDep, ServiceDep, client_address
from provenance.api.errors import ApiError, echo
from provenance.api.keys import ForbiddenError
from provenance.api.images import (MAX_THUMBNAIL_SIDE, THUMBNAIL_SIZES, make_thumbnail,
                                   snap_thumbnail_size)
from provenance.proofs import checkpoint_obj, get_record, latest_checkpoint, record_proof
from provenance.api.schemas import Withdrawn, errors
from provenance.api.withdrawn import refuse_if_withdrawn
from provenance.cid import canonical_cid
from provenance.ledger import Ledger
from provenance.logging import get_logger
from provenance.records_store import StoredRecord

log = get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["records"])

_IMMUTABLE = "public, max-age=31536000, immutable"  # content-addressed: the bytes under a CID never change
# Images never change either, but a withdrawal stops serving them: shared caches must ask again within minutes.
_WITHDRAWABLE = "public, max-age=300"


def _record(ledger: Ledger, cid: str) -> StoredRecord:
    rec = get_record(ledger, canonical_cid(cid))
    if rec is None:
        raise ApiError(404, "not_found", f"no record {echo(cid)}")
    return rec


@router.get("/records/{cid}", responses={200: {"content": {"application/json": {}}}, **errors(400, 404)},
            summary="A signed record, as its exact canonical bytes")
def get_record_json(cid: str, service: ServiceDep) -> Response:
    """The stored RFC 8785 bytes of the signed record: their CIDv1 (raw) is ``cid``, so a client can re-derive it."""
    rec = _record(service.ledger, cid)
    return Response(rec.record_bytes, media_type="application/json",
                    headers={"Cache-Control": _IMMUTABLE, "ETag": f'"{rec.cid}"'})


@router.get("/records/{cid}/proof", responses=errors(400, 404), summary="Inclusion proof, checkpoint and anchor")
def get_record_proof(cid: str, service: ServiceDep) -> dict[str, Any]:
    """``checkpoint`` is null (and the proof empty) until a checkpoint covers the record."""
    proof = record_proof(service.ledger, canonical_cid(cid))
    if proof is None:
        raise ApiError(404, "not_found", f"no record {echo(cid)}")
    return proof


@router.get("/records/{cid}/bundle", responses={200: {"content": {"application/json": {}}}, **errors(400, 404)},
            summary="The record's offline proof bundle (check it with provenance verify)")
def get_record_bundle(cid: str, service: ServiceDep,
                      tree_size: Annotated[int | None, Query(
                          ge=1, description="The checkpoint to prove against (default: the latest). Pinned, the "
                                            "bytes do not change: what a C2PA copy's proof-bundle digest names.")
                      ] = None) -> Response:
    """One self-contained file: the signed record, the publisher's key events, their inclusion proofs (C2SP
    tlog-proof), the signed checkpoint and its anchor receipt. 404 while no checkpoint covers the record."""
    from provenance.bundle.build import build_bundle
    from provenance.errors import BundleError

    try:
        bundle = build_bundle(service.ledger, canonical_cid(cid), tree_size=tree_size)
    except BundleError as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    if bundle is None:
        raise ApiError(404, "not_found", f"no record {echo(cid)}")
    return Response(bundle.to_json(), media_type="application/json",
                    headers={"Cache-Control": _WITHDRAWABLE, "ETag": f'"{bundle.sha256}"'})


@router.get("/records/{cid}/image", responses={200: {"content": {"image/jpeg": {}, "image/*": {}}},
                                               **errors(400, 404, 410, 429, 503)},
            dependencies=[ImageRateLimited], summary="The registered image, or a JPEG thumbnail of it")
async def get_record_image(request: Request, cid: str, service: ServiceDep, ctx: ContextDep,
                           size: Annotated[int | None, Query(
                               ge=16, le=MAX_THUMBNAIL_SIDE,
                               description="Long side of a JPEG thumbnail, px; rounded up to one of "
                                           f"{', '.join(map(str, THUMBNAIL_SIZES))}")] = None,
                           ) -> Response:
    """Rate-limited per client IP; a thumbnail not yet cached is rendered in a work slot (429/503 when busy)."""
    rec = await run_in_threadpool(_record, service.ledger, cid)
    await run_in_threadpool(refuse_if_withdrawn, service, rec.cid, "its image")  # 410 (docs/withdrawal.md)
    if size is None:
        data = await run_in_threadpool(service.ledger.blockstore.get, rec.image_cid)
        media_type = _record_media_type(rec)
        return Response(data, media_type=media_type, headers={"Cache-Control": _WITHDRAWABLE})
    size = snap_thumbnail_size(size)
    thumb = ctx.thumbnails.get(rec.image_cid, size)
    if thumb is None:
        async with ctx.work.slot(client_address(request), "thumbnail"):
            data = await run_in_threadpool(service.ledger.blockstore.get, rec.image_cid)
            thumb = await run_in_threadpool(make_thumbnail, data, size, max_bytes=ctx.settings.max_image_bytes,
                                            max_pixels=ctx.settings.max_image_pixels)
        ctx.thumbnails.put(rec.image_cid, size, thumb)
    return Response(thumb, media_type="image/jpeg", headers={"Cache-Control": _WITHDRAWABLE})


def _record_media_type(rec: StoredRecord) -> str:
    from provenance.records import parse_record

    media_type = parse_record(rec.record_bytes).record.media_type
    return media_type if isinstance(media_type, str) and media_type.startswith("image/") else "application/octet-stream"


@router.get("/checkpoints/latest", responses=errors(404), summary="The latest signed checkpoint and its anchor")
def get_latest_checkpoint(service: ServiceDep) -> dict[str, Any]:
    cp = latest_checkpoint(service.ledger)
    if cp is None:
        raise ApiError(404, "not_found", "no checkpoint has been signed yet")
    return checkpoint_obj(service.ledger, cp)


@router.delete("/records/{cid}", response_model=Withdrawn, responses=errors(400, 401, 403, 404, 422),
               summary="Withdraw a record (its publisher only)")
def withdraw_record(cid: str, publisher: PublisherDep, service: ServiceDep) -> dict[str, Any]:
    """A service-custody publisher's withdrawal is signed here with its custodial key and appended to the log as a
    ``record-withdrawal`` key event; a publisher holding its own key signs its own (``POST /v1/key-events``,
    ``provenance client withdraw``), and gets 422 here. Lookups stop returning the record; the log is append-only,
    so the record itself stays auditable (docs/withdrawal.md)."""
    rec = _record(service.ledger, cid)
    if rec.publisher_id != publisher:
        raise ForbiddenError(f"record {rec.cid} belongs to another publisher; only its publisher may withdraw it")
    existing = service.ledger.withdrawal(rec.cid)
    event_cid = existing.cid if existing is not None else service.ledger.withdraw(rec.cid, publisher)
    service.lookup.withdraw(rec.cid, publisher)
    log.info("api.record.withdrawn", record_cid=rec.cid, publisher=publisher, event_cid=event_cid)
    return {"record_cid": rec.cid, "withdrawn": True, "event_cid": event_cid}
