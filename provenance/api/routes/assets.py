"""Publisher ingest: ``POST /v1/assets`` queues an image, ``GET /v1/tasks/{id}`` follows it."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from provenance.api.deps import ContextDep, PublisherDep, ServiceDep
from provenance.api.errors import ApiError
from provenance.api.schemas import TaskAccepted, TaskStatusOut, errors
from provenance.api.uploads import IMAGE_FIELD, form_image, multipart_openapi, read_form
from provenance.logging import get_logger
from provenance.records import KNOWN_METADATA, PublisherMetadata

log = get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["ingest"])

_METADATA_FIELD = {
    "type": "string",
    "description": "JSON object: title, author, source_url, licence, capture_time, and any other string fields "
                   '(kept under "extra"). Example: {"title": "Harbour at dawn", "licence": "CC-BY-4.0"}',
}


def parse_metadata(text: str | None) -> PublisherMetadata:
    if text is None or not text.strip():
        return PublisherMetadata()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(422, "invalid_metadata", f"metadata: not valid JSON ({exc.msg} at {exc.pos})") from None
    if not isinstance(obj, dict):
        raise ApiError(422, "invalid_metadata", "metadata: must be a JSON object")
    pairs: dict[str, str] = {}
    extra = obj.pop("extra", None) or {}
    if not isinstance(extra, dict):
        raise ApiError(422, "invalid_metadata", "metadata.extra: must be a JSON object of strings")
    if any(k in KNOWN_METADATA for k in extra):
        raise ApiError(422, "invalid_metadata", f"metadata.extra: {', '.join(KNOWN_METADATA)} go at the top level")
    for key, value in [*obj.items(), *extra.items()]:
        if value is None:
            continue
        if not isinstance(value, str):
            raise ApiError(422, "invalid_metadata", f"metadata.{key}: must be a string")
        if key in pairs:
            raise ApiError(422, "invalid_metadata", f"metadata.{key}: given twice")
        pairs[key] = value
    return PublisherMetadata.from_pairs(pairs)


def task_obj(status: Any) -> dict[str, Any]:
    obj = dataclasses.asdict(status) if dataclasses.is_dataclass(status) else dict(vars(status))
    task_id = str(obj.pop("id", obj.pop("task_id", "")))
    cid = obj.get("record_cid")
    return {"task_id": task_id, "state": obj.get("state"), "step": obj.get("step"), "record_cid": cid,
            "record_url": f"/v1/records/{cid}" if cid else None, "duplicate": obj.get("duplicate"),
            "error": obj.get("error")}


@router.post(
    "/assets",
    status_code=202,
    response_model=TaskAccepted,
    responses=errors(401, 413, 415, 422, 503),
    openapi_extra=multipart_openapi({"file": IMAGE_FIELD, "metadata": _METADATA_FIELD}, ["file"]),
    summary="Register an image (queued; returns a task id)",
)
async def submit_asset(request: Request, publisher: PublisherDep, service: ServiceDep,
                       ctx: ContextDep) -> JSONResponse:
    """Queue one image for ingest under the publisher the API key belongs to. The image is checked (type sniffed
    from the bytes, fully decoded, within limits) before it is queued, so a bad file is refused here, not later."""
    form = await read_form(request)
    try:
        upload = await form_image(form, max_image_bytes=ctx.max_image_bytes)
        raw_meta = form.get("metadata")
        metadata = parse_metadata(raw_meta if isinstance(raw_meta, str) else None)
    finally:
        await form.close()
    source = upload.filename[:200]
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
        raise ApiError(404, "not_found", f"no ingest task {task_id!r}")
    return task_obj(status)
