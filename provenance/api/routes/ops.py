"""Operations: ``GET /healthz`` (liveness: the process answers, no I/O), ``GET /readyz`` (readiness: database, block
store, hash index, chain; 503 naming what is not ready) and ``GET /metrics`` (Prometheus). See docs/operations.md."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from provenance.api.deps import ContextDep
from provenance.metrics import ServiceCollector, exposition_registry
from provenance.readiness import check_readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process is up (no I/O)")
async def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: database, block store, hash index and chain reachable",
            responses={503: {"description": "Not ready: the body names each part that is not"}})
async def readyz(ctx: ContextDep) -> JSONResponse:
    result = await run_in_threadpool(check_readiness, ctx.opened_service, ctx.settings)
    return JSONResponse(result.to_obj(), status_code=200 if result.ready else 503,
                        headers={"Cache-Control": "no-store"})


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
def metrics(ctx: ContextDep) -> Response:
    registry = exposition_registry(ServiceCollector(lambda: ctx.opened_service))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
