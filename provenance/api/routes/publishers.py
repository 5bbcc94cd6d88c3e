"""Publishers and their keys over HTTP: who am I (``GET /v1/publisher``), signed key events
(``POST /v1/key-events``: rotation, revocation, withdrawal, as the publisher signed them), and the admin route that
registers a publisher by its public key only (``POST /v1/admin/publishers``, bearer ``PROVENANCE_ADMIN_TOKEN``)."""

from __future__ import annotations

import hmac
import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from provenance.api.deps import ContextDep, PublisherDep, ServiceDep
from provenance.api.errors import ApiError
from provenance.api.json_limits import check_json
from provenance.api.keys import ForbiddenError, create_api_key
from provenance.api.schemas import errors
from provenance.client.keys import parse_public_key
from provenance.keyevents import KeyEvent
from provenance.logging import get_logger

log = get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["publishers"])

_EVENT_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "description": "A key event signed by the publisher (provenance-key-event/v1): "
                                     "key-rotation, key-revocation or record-withdrawal. See docs/publisher-keys.md."}}}}}
_ADMIN_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["name", "public_key"],
    "properties": {"name": {"type": "string"},
                   "public_key": {"type": "string", "description": "Ed25519 public key, PEM (the .pub file)"}}}}}}}


def parse_signed_json(data: bytes, ctx: Any, what: str) -> Any:
    """A JSON object from a client (bounded in size and depth before parsing)."""
    check_json(data, ctx.json_limits, what=what)
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"{what}: not valid JSON ({str(exc)[:120]})") from None


def publisher_info(service: Any, publisher: str) -> dict[str, Any]:
    history = service.ledger.key_history()
    keys = history.keys.get(publisher, {})
    return {"publisher": publisher, "custody": service.ledger.custody(publisher),
            "keys": [{"key_id": k.key_id, "valid": k.revoked_leaf is None and k.retired_leaf is None,
                      "revoked_at": k.revoked_at, "authority": k.authority} for k in keys.values()]}


@router.get("/publisher", responses=errors(401), summary="The publisher an API key belongs to, and its keys")
def whoami(publisher: PublisherDep, service: ServiceDep) -> dict[str, Any]:
    return publisher_info(service, publisher)


@router.post("/key-events", status_code=201, responses=errors(400, 401, 403, 409, 422),
             openapi_extra=_EVENT_BODY, summary="Append a key event the publisher signed")
async def post_key_event(request: Request, publisher: PublisherDep, service: ServiceDep,
                         ctx: ContextDep) -> dict[str, Any]:
    """A rotation (signed by the old key), a revocation or a withdrawal (signed by a valid key of the publisher).
    It is checked against the publisher's key history in the log and appended as a log entry; nothing is written
    when it does not hold (422 naming why; 409 for a replay)."""
    event = KeyEvent.from_obj(parse_signed_json(await request.body(), ctx, "key event"))
    if event.publisher != publisher:
        raise ForbiddenError(f"the event is about publisher {event.publisher!r}; this API key is {publisher!r}'s")
    if event.signer_role != "publisher":
        raise ForbiddenError("operator-signed events are appended by the operator (provenance publishers ...)")
    cid = await run_in_threadpool(service.ledger.append_key_event, event)
    if event.kind == "record-withdrawal" and event.record_cid:
        await run_in_threadpool(_hide, service, event.record_cid, publisher)
    log.info("api.key_event", kind=event.kind, publisher=publisher, cid=cid)
    return {"event_cid": cid, "kind": event.kind, "publisher": publisher}


def _hide(service: Any, record_cid: str, publisher: str) -> None:
    from provenance.index.errors import IndexEntryNotFoundError

    try:
        service.lookup.withdraw(record_cid, publisher)
    except IndexEntryNotFoundError:
        pass  # never indexed (its ingest failed after the append): the logged withdrawal is what counts


def _check_admin(request: Request, ctx: Any) -> None:
    token = ctx.settings.admin_token
    if token is None:
        raise ApiError(404, "not_found", "admin routes are off (set PROVENANCE_ADMIN_TOKEN)")
    given = request.headers.get("authorization", "")
    expected = f"Bearer {token.get_secret_value()}"
    if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8")):
        raise ApiError(401, "unauthorized", "admin routes need Authorization: Bearer <PROVENANCE_ADMIN_TOKEN>",
                       headers={"WWW-Authenticate": "Bearer"})


@router.post("/admin/publishers", status_code=201, responses=errors(400, 401, 404, 409, 422),
             openapi_extra=_ADMIN_BODY, summary="Register a publisher by its public key (admin)")
async def admin_add_publisher(request: Request, service: ServiceDep, ctx: ContextDep) -> dict[str, Any]:
    """Publisher custody: the service stores only the public key; the publisher signs its statements with the
    private half on its own machine (``provenance client``). Answers the API key once."""
    _check_admin(request, ctx)
    body = parse_signed_json(await request.body(), ctx, "request body")
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or \
            not isinstance(body.get("public_key"), str):
        raise ApiError(400, "invalid_request", "body must be {\"name\": ..., \"public_key\": PEM}")
    key = parse_public_key(body["public_key"].encode("utf-8"))
    key_id = await run_in_threadpool(service.ledger.add_publisher, body["name"], key)
    api_key = await run_in_threadpool(create_api_key, service.ledger.engine, body["name"])
    log.info("api.publisher.added", publisher=body["name"], key_id=key_id, custody="publisher")
    return {"publisher": body["name"], "key_id": key_id, "custody": "publisher", "api_key": api_key}
