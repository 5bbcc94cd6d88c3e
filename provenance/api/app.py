"""``create_app()``: the FastAPI application. Nothing is built at import time: settings are read and the service
opened when ``create_app`` runs (the service lazily, on first use or at startup), so tests pass their own.

Routes: ingest (``routes/assets.py``), lookup (``routes/lookup.py``), records/proofs/checkpoints
(``routes/records.py``), the C2PA Soft Binding Resolution API (``routes/softbinding.py``), the log as C2SP
tiles (``routes/tlog.py``: ``/checkpoint``, ``/tile/...``) and the journalist page
(``routes/pages.py`` + ``static/``), probes and metrics (``routes/ops.py``: ``/healthz``, ``/readyz``,
``/metrics``). Errors: ``errors.py`` (the one status-code mapping). OpenAPI docs at /docs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from provenance.api.anchoring import anchor_interval, anchor_loop
from provenance.api.change_maps import ChangeMapStore
from provenance.api.deps import ApiContext, ProvenanceService
from provenance.api.docs import DOCS_CSP
from provenance.api.docs import router as docs_router
from provenance.api.errors import install_error_handlers
from provenance.api.index_refresh import index_refresh_loop, refresh_interval
from provenance.api.keys import ensure_api_keys_table
from provenance.api.shared_limits import open_shared_limits, token_bucket
from provenance.api.routes import assets, lookup, ops, pages, records, softbinding, tlog
from provenance.api.routes import publishers as publisher_routes
from provenance.api.routes import receipts as receipt_routes
from provenance.api.routes.pages import STATIC_DIR
from provenance.api.json_limits import JsonLimitMiddleware
from provenance.api.timeouts import BodyTimeoutMiddleware
from provenance.api.uploads import BodySizeLimitMiddleware
from provenance.config import Settings, get_settings

_ENVELOPE_BYTES = 64 * 1024  # multipart boundaries, part headers and the metadata field around an image

# The page loads only its own files; images may also be blob: URLs of the file being checked.
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
_PAGE_CSP = (b"content-security-policy",
             b"default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
             b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if scope.get("path", "").startswith("/docs") else _PAGE_CSP[1]  # Swagger UI: self-hosted

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(_SECURITY_HEADERS)
                headers.append((b"content-security-policy", csp))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def _version() -> str:
    try:
        return version("provenance-service")
    except PackageNotFoundError:
        return "0+unknown"


def open_api_service(settings: Settings) -> ProvenanceService:
    """The service with its ingest queue attached (in-process by default: no broker)."""
    from provenance.services import open_service
    from workers.queue import open_queue

    service = open_service(settings)
    if service.queue is None:
        service.queue = open_queue(settings, service.pipeline, block_when_full=False)  # full: 503 at once
        resume = getattr(service.queue, "resume", None)
        if callable(resume):  # in-process: run again what a crashed or killed server had accepted (202)
            resume()
    return service


def create_app(service_factory: Callable[[], ProvenanceService] | None = None, *,
               settings: Settings | None = None, anchor: bool = True) -> FastAPI:
    """The API over the service ``service_factory()`` returns (default: :func:`open_api_service`).

    ``anchor=False`` turns off the in-process periodic anchoring whatever the settings say (tests)."""
    settings = settings if settings is not None else get_settings()
    factory = service_factory if service_factory is not None else (lambda: open_api_service(settings))
    shared = open_shared_limits(settings)  # Redis when replicas must share one budget per client (docs/limits.md)
    ctx = ApiContext(
        settings=settings,
        service_factory=factory,
        limiter=token_bucket("lookup", settings.api_lookup_rate_per_s, settings.api_lookup_burst, shared),
        change_maps=ChangeMapStore(settings.data_dir / "change-maps" / "served", settings.api_change_map_ttl_s,
                                   max_files=settings.api_change_map_max_files,
                                   max_bytes=settings.api_change_map_max_bytes),
        shared=shared,
    )
    interval = anchor_interval(settings) if anchor else None

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        ensure_api_keys_table(ctx.service.ledger.engine)  # opens the service now: misconfiguration fails at start
        task = asyncio.create_task(anchor_loop(lambda: ctx.service.ledger, interval)) if interval else None
        refresher = asyncio.create_task(index_refresh_loop(
            lambda: ctx.opened_service, refresh_interval(settings.index_max_staleness_s)))
        try:
            yield
        finally:
            for background in (task, refresher):
                if background is not None:
                    background.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await background
            ctx.close()

    app = FastAPI(
        title="Image provenance API",
        version=_version(),
        description="Register images in a signed, Merkle-logged, chain-anchored ledger; look up where an image came "
                    "from and whether it was changed; resolve C2PA soft bindings. Publishers authenticate with "
                    "`Authorization: Bearer <API key>`; lookups are public and rate-limited per client IP.",
        lifespan=lifespan,
        docs_url=None,  # our own /docs (docs.py): Swagger UI without a CDN
        redoc_url=None,
    )
    app.state.api = ctx
    install_error_handlers(app)
    max_body = settings.api_max_upload_bytes or settings.max_image_bytes + _ENVELOPE_BYTES
    app.add_middleware(JsonLimitMiddleware, limits=ctx.json_limits)  # before any JSON parser (docs/hardening.md)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=max_body)
    app.add_middleware(BodyTimeoutMiddleware, idle_s=settings.api_body_idle_timeout_s,
                       total_s=settings.api_body_timeout_s)
    app.add_middleware(SecurityHeadersMiddleware)
    for module in (assets, lookup, records, softbinding, tlog, pages, ops):
        app.include_router(module.router)
    app.include_router(receipt_routes.router)  # GET /v1/receipts/{id}: lookup receipts' permalinks
    app.include_router(publisher_routes.router)  # whoami, signed key events, admin registration by public key
    app.include_router(docs_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
