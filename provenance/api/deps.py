"""Per-app state and the FastAPI dependencies routes declare: the service, settings, the caller's publisher, and
the lookup rate limit. Tests override :func:`get_service` or pass a ``service_factory`` to ``create_app``."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from provenance.api.change_maps import ChangeMapStore
from provenance.api.clients import ClientResolver, parse_trusted_proxies
from provenance.api.errors import ApiError
from provenance.api.images import ThumbnailCache
from provenance.api.json_limits import JsonLimits
from provenance.api.keys import AuthenticationError, authenticate
from provenance.api.ratelimit import TokenBucketLimiter
from provenance.api.shared_limits import SharedLimits, token_bucket, work_slots
from provenance.api.workslots import WorkSlots
from provenance.config import Settings
from provenance.ledger import Ledger
from provenance.logging import get_logger

log = get_logger(__name__)


class ProvenanceService(Protocol):
    """What the API needs of ``provenance.services.open_service(settings)``."""

    ledger: Ledger
    pipeline: Any  # provenance.ingest.IngestPipeline
    lookup: Any  # provenance.lookup.service.Lookup
    queue: Any  # workers.queue.IngestQueue


@dataclass
class ApiContext:
    settings: Settings
    service_factory: Callable[[], ProvenanceService]
    limiter: TokenBucketLimiter
    change_maps: ChangeMapStore
    thumbnails: ThumbnailCache = field(default_factory=ThumbnailCache)
    shared: SharedLimits | None = None  # Redis-backed limits shared by replicas (shared_limits.py); None: in-memory
    _service: ProvenanceService | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # the HTTP edge's own limits (docs/hardening.md), all from settings
    work: WorkSlots = field(init=False)
    image_limiter: TokenBucketLimiter = field(init=False)
    clients: ClientResolver = field(init=False)
    json_limits: JsonLimits = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.work = work_slots(s, self.shared)
        self.image_limiter = token_bucket("image", s.api_image_rate_per_s, s.api_image_burst, self.shared)
        self.clients = ClientResolver(parse_trusted_proxies(s.api_trusted_proxies))
        self.json_limits = JsonLimits(max_bytes=s.api_max_json_bytes, max_depth=s.api_max_json_depth)

    @property
    def service(self) -> ProvenanceService:
        if self._service is None:
            with self._lock:
                if self._service is None:
                    self._service = self.service_factory()
        return self._service

    @property
    def opened_service(self) -> ProvenanceService | None:
        """The service if it is open, without opening it (probes and metrics must not)."""
        return self._service

    @property
    def max_image_bytes(self) -> int:
        return self.settings.max_image_bytes

    def close(self) -> None:
        if self.shared is not None:
            self.shared.close()
        with self._lock:
            service, self._service = self._service, None
        close = getattr(service, "close", None)
        if callable(close):
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - shutting down: report, do not mask the real exit
                log.warning("api.service.close_failed", error=f"{exc.__class__.__name__}: {exc}")


def get_context(request: Request) -> ApiContext:
    return request.app.state.api


def get_service(request: Request) -> ProvenanceService:
    return get_context(request).service


ContextDep = Annotated[ApiContext, Depends(get_context)]
ServiceDep = Annotated[ProvenanceService, Depends(get_service)]

_bearer = HTTPBearer(auto_error=False, description="A publisher's API key (provenance api-keys create PUBLISHER).")


def get_publisher(
    service: ServiceDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    """The publisher whose API key authorises this request (401 without a valid, unrevoked key)."""
    if credentials is None or not credentials.credentials:
        raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>' with a publisher's key")
    return authenticate(service.ledger.engine, credentials.credentials)


PublisherDep = Annotated[str, Depends(get_publisher)]


def client_address(request: Request) -> str:
    """The client for rate limits and work slots: the socket peer, or, when the peer is a configured trusted proxy
    (PROVENANCE_API_TRUSTED_PROXIES), the client it names in X-Forwarded-For (see ``clients.py``)."""
    peer = request.client.host if request.client else None
    return get_context(request).clients.resolve(peer, request.headers.getlist("x-forwarded-for"))


def _take(limiter: TokenBucketLimiter, client: str, what: str) -> None:
    wait = limiter.take(client)
    if wait > 0:
        retry = max(1, math.ceil(wait))
        raise ApiError(429, "rate_limited",
                       f"too many {what} from {client}: at most {limiter.burst:g} at once, then "
                       f"{limiter.rate_per_s:g} per second; retry in {retry} s",
                       headers={"Retry-After": str(retry)})


def lookup_rate_limit(request: Request, ctx: ContextDep) -> None:
    """One token per public lookup, per client IP; 429 with Retry-After when the bucket is empty."""
    _take(ctx.limiter, client_address(request), "lookups")


def image_rate_limit(request: Request, ctx: ContextDep) -> None:
    """One token per image (original or thumbnail) request, per client IP; 429 with Retry-After beyond."""
    _take(ctx.image_limiter, client_address(request), "image requests")


RateLimited = Depends(lookup_rate_limit)
ImageRateLimited = Depends(image_rate_limit)
