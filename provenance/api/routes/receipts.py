"""Receipt permalinks: ``GET /v1/receipts/{id}``, the signed receipt a lookup returned, as its exact stored bytes.

The journalist page re-displays one at ``/?receipt=<id>``. A receipt verifies offline
(``provenance verify-receipt FILE --service-key VKEY``); this route only keeps it findable for a while.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from provenance.api.deps import ContextDep, ServiceDep
from provenance.api.errors import ApiError, echo
from provenance.api.schemas import errors
from provenance.lookup_receipts import stored_receipt

router = APIRouter(prefix="/v1", tags=["lookup"])

RECEIPT_HEADER = "X-Provenance-Receipt-Id"
"""Response header of ``POST /matches/byContent`` naming its receipt (with a ``Link`` to the permalink)."""


def receipt_url(receipt_id: str) -> str:
    return f"/v1/receipts/{receipt_id}"


def receipt_headers(receipt_id: str) -> dict[str, str]:
    """Headers that point to a receipt without changing a response body whose schema is fixed elsewhere."""
    return {RECEIPT_HEADER: receipt_id,
            "Link": f'<{receipt_url(receipt_id)}>; rel="describedby"; type="application/json"'}


@router.get("/receipts/{receipt_id}", responses={200: {"content": {"application/json": {}}}, **errors(404)},
            summary="A signed lookup receipt, as its exact canonical bytes")
async def get_receipt(receipt_id: str, service: ServiceDep, ctx: ContextDep) -> Response:
    """The RFC 8785 bytes of the receipt a lookup returned (``receipt_url`` in its answer). Receipts are kept
    ``PROVENANCE_RECEIPT_RETENTION_DAYS`` days (and at most ``PROVENANCE_RECEIPT_MAX_COUNT``)."""
    body = await run_in_threadpool(stored_receipt, service, ctx.settings, receipt_id)
    if body is None:
        raise ApiError(404, "not_found", f"no receipt {echo(receipt_id)} (receipts are kept "
                                         f"{ctx.settings.receipt_retention_days:g} days)")
    return Response(body, media_type="application/json",
                    headers={"Cache-Control": "public, max-age=86400",
                             "Content-Disposition": f'inline; filename="receipt-{receipt_id}.json"'})
