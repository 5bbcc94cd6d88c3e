"""Keep the API's hash index within ``PROVENANCE_INDEX_MAX_STALENESS_S`` of the catalog, lookups or not.

Records ingested by other processes (Celery workers, another replica) reach this process's index on its next search
(``HashIndex.refresh``). Without searches it would fall behind, and a lookup after a long quiet spell would pay for
the whole catch-up; so the server also catches up every quarter of the staleness limit. ``/readyz`` reports how far
behind the index is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from provenance.logging import get_logger
from provenance.metrics import record_error

log = get_logger(__name__)


def refresh_interval(max_staleness_s: float) -> float:
    return min(30.0, max(0.5, max_staleness_s / 4))


async def index_refresh_loop(get_service: Callable[[], Any | None], interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        service = get_service()
        refresh = getattr(getattr(getattr(service, "lookup", None), "index", None), "refresh_all", None)
        if refresh is None:
            continue
        try:
            await run_in_threadpool(refresh)
        except Exception as exc:  # noqa: BLE001 - a store outage must not stop the loop; /readyz shows the lag
            record_error(exc)
            log.warning("api.index_refresh.failed", error=f"{type(exc).__name__}: {exc}")
