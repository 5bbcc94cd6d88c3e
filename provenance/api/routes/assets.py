"""Publisher ingest: ``POST /v1/assets`` queues an image, ``GET /v1/tasks/{id}`` follows it."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from provenance.api.deps import ContextDep, PublisherDep, ServiceDep
from provenance.api.errors import ApiError, echo
from provenance.api.schemas import TaskAccepted, TaskStatusOut, errors, parse_metadata_json
from provenance.api.uploads import IMAGE_FIELD, form_image, multipart_openapi, read_form
from provenance.logging import get_logger
from provenance.metadata import PublisherMetadata
from provenance.statements import SignedStatement

log = get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["ingest"])

_METADATA_FIELD = {
    "type": "string",
    "description": "JSON object: title, author, source_url, licence, capture_time (RFC 3339), and any other string "
                   'fields (kept under "extra"). Strings only, valid UTF-8, at most 64 fields, names up to 64 '
                   "characters, a title up to 1,000 and any other value up to 4,096; no repeated keys. "
                   'Example: {"title": "Harbour at dawn", "licence": "CC-BY-4.0"}',
}


_STATEMENT_FIELD = {
    "type": "string",
    "description": "The publisher's signed statement (JSON, provenance-statement/v1: image sha256, CID and media "
                   "type, metadata, publisher and key id, time; Ed25519 over RFC 8785 canonical bytes). Required "
                   "for a publisher holding its own key (`provenance client submit` makes it); its metadata is what "
                   "the record carries.",
}


def parse_metadata(text: str | None) -> PublisherMetadata:
    """The ``metadata`` field, under the schema the CLI's ``--meta`` shares (``schemas.MetadataIn``): 422 with the
    reason (``InvalidMetadataError``) for anything it refuses."""
    return parse_metadata_json(text)


def parse_statement(raw: Any, ctx: Any) -> SignedStatement:
    """The ``statement`` form field: a publisher statement as JSON (bounded before parsing), strictly parsed."""
    from provenance.api.json_limits import check_json

    if not isinstance(raw, str):
        raise ApiError(422, "invalid_statement", "statement must be a form field holding JSON, not a file")
    data = raw.encode("utf-8", "surrogatepass")
    check_json(data, ctx.json_limits, what="statement")
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(422, "invalid_statement", f"statement: not valid JSON ({str(exc)[:120]})") from None
    return SignedStatement.from_obj(obj)


def task_obj(status: Any) -> dict[str, Any]:
    obj = dataclasses.asdict(status) if dataclasses.is_dataclass(status) else dict(vars(status))
    task_id = str(obj.pop("id", obj.pop("task_id", "")))
    cid = obj.get("record_cid")
    return {"task_id": task_id, "state": obj.get("state"), "step": obj.get("step"), "record_cid": cid,
            "record_url": f"/v1/records/{cid}" if cid else None, "duplicate": obj.get("duplicate"),
            "error": obj.get("error"),
            **{k: obj.get(k) for k in ("earlier_record_cid", "earlier_publisher", "earlier_leaf_index",
                                       "earlier_match", "metadata_conflict")}}


@router.post(
    "/assets",
    status_code=202,
    response_model=TaskAccepted,
    responses=errors(400, 401, 403, 408, 409, 413, 415, 422, 429, 503),
    openapi_extra=multipart_openapi({"file": IMAGE_FIELD, "metadata": _METADATA_FIELD,
                                     "statement": _STATEMENT_FIELD}, ["file"]),
    summary="Register an image (queued; returns a task id)",
)
async def submit_asset(request: Request, publisher: PublisherDep, service: ServiceDep,
                       ctx: ContextDep) -> JSONResponse:
    """Queue one image for ingest under the publisher the API key belongs to. The image is checked (type sniffed
    from the bytes, fully decoded, within limits) and its metadata validated before it is queued, so a bad upload
    is refused here (422 with the reason), not later. Once 202 is answered the upload survives a server crash.

    Bytes this publisher registered already: with the same metadata (or none), 202 and the task ends
    ``duplicate: true`` with the existing record; with other metadata, 409 ``metadata_conflict`` naming that record
    (records are immutable: the new metadata would otherwise be dropped). An image another publisher registered first is flagged in the
    task result (``earlier_record_cid``), or refused with 409 ``duplicate_image`` under
    ``PROVENANCE_INGEST_DUPLICATE_POLICY=refuse`` (docs/operations.md)."""
    form = await read_form(request)
    try:
        upload = await form_image(form, max_image_bytes=ctx.max_image_bytes)
        raw_meta = form.get("metadata")
        metadata = parse_metadata(raw_meta if isinstance(raw_meta, str) else None)
        raw_statement = form.get("statement")
    finally:
        await form.close()
    source = upload.filename[:200]
    statement = parse_statement(raw_statement, ctx) if raw_statement is not None else None
    if statement is not None:
        if raw_meta is not None and metadata != statement.statement.metadata:
            raise ApiError(422, "invalid_statement", "the metadata field differs from the signed statement's "
                                                     "metadata (send the statement alone, or both the same)")
        metadata = statement.statement.metadata
        # Checked now, before anything is queued: signature under a key the publisher holds, this image, fresh,
        # unused. The queue's append step finds it staged.
        await run_in_threadpool(service.ledger.stage_statement, statement, upload.data, publisher=publisher)
    elif await run_in_threadpool(service.ledger.custody, publisher) == "publisher":
        raise ApiError(422, "statement_required", f"publisher {publisher!r} holds its own key: send the image with "
                                                  "its signed statement (field 'statement'; provenance client submit)")
    # The queue decodes the image fully (limits, corruption) before queueing anything: a bad file is refused here.
    task_id = await run_in_threadpool(
        service.queue.submit, upload.data, publisher=publisher, metadata=metadata, source=source)
    log.info("api.asset.queued", publisher=publisher, task_id=task_id, bytes=len(upload.data))
    url = f"/v1/tasks/{task_id}"
    return JSONResponse({"task_id": task_id, "state": "pending", "status_url": url}, status_code=202,
                        headers={"Location": url})


@router.get("/tasks/{task_id}", response_model=TaskStatusOut, responses=errors(404), summary="An ingest task's state")
def get_task(task_id: str, service: ServiceDep) -> dict[str, Any]:
    status = service.queue.status(task_id)  # UnknownTaskError (404) for an id it never saw
    if status is None:
        raise ApiError(404, "not_found", f"no ingest task {echo(task_id)}")
    return task_obj(status)
