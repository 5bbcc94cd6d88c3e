"""Readiness: can this process serve ingest and lookups now? What ``GET /readyz`` answers (``/healthz`` is liveness
only and does no I/O).

Each check is cheap (one round trip or one small query) and runs with a deadline, so a part that hangs makes the
probe say so instead of making it hang too:

* ``database``: ``SELECT 1`` on the record store;
* ``blockstore``: the IPFS daemon answers ``/api/v0/id``, or the local store's directory is writable;
* ``index``: every channel of the catalog is loaded, and no channel lags the catalog (entries other processes added)
  by more than ``PROVENANCE_INDEX_MAX_STALENESS_S``;
* ``chain``: when ``PROVENANCE_CHAIN_RPC_URL`` is set, the node answers ``eth_chainId``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import text

from provenance.config import Settings

__all__ = ["CheckResult", "Readiness", "check_readiness"]

# Checks run here so that one that hangs (a daemon that accepts but never answers) cannot hold the caller; a few
# threads are enough: a probe runs every few seconds and each check is bounded.
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")


class NotReady(Exception):
    """A check's failure, with what an operator should read."""


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str
    ms: float

    def to_obj(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, "ms": round(self.ms, 1)}


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, CheckResult]

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.checks.values())

    def to_obj(self) -> dict[str, Any]:
        return {"status": "ready" if self.ready else "not_ready",
                "not_ready": sorted(name for name, c in self.checks.items() if not c.ok),
                "checks": {name: c.to_obj() for name, c in self.checks.items()}}


def _database(service: Any) -> str:
    with service.ledger.reader.connect() as conn:
        conn.execute(text("SELECT 1"))
    return "reachable"


def _blockstore(service: Any) -> str:
    store = service.ledger.blockstore
    ping = getattr(store, "ping", None)
    if not callable(ping):
        return f"{store.describe()} (no health check)"
    answer = ping()
    return f"{store.describe()}: {answer}" if answer else store.describe()


def _index(max_staleness_s: float) -> Callable[[Any], str]:
    def check(service: Any) -> str:
        index = service.lookup.index
        lags = index.staleness()
        # A channel this process has not loaded is behind by all its entries, like any other lag: every channel
        # present at start is loaded before the server answers, so this is one another process created since (the
        # first record of a new deployment), which the next search or catch-up loads. Not ready only past the limit.
        stale = {ch: lag for ch, lag in lags.items() if lag.seconds > max_staleness_s}
        if stale:
            raise NotReady("; ".join(f"{ch} is {lag.behind} entries ({lag.seconds:.0f} s) behind the catalog"
                                     + ("" if lag.loaded else " (not loaded yet)")
                                     for ch, lag in sorted(stale.items())) + f" (limit {max_staleness_s:g} s)")
        behind = sum(lag.behind for lag in lags.values())
        worst = max((lag.seconds for lag in lags.values()), default=0.0)
        loaded = sum(lag.loaded for lag in lags.values())
        return f"{loaded} of {len(lags)} channels loaded; {behind} entries to pick up, oldest {worst:.1f} s"
    return check


def _chain(rpc_url: str, timeout_s: float) -> Callable[[Any], str]:
    def check(_: Any) -> str:
        try:
            response = httpx.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                                  timeout=timeout_s)
            chain_id = int(response.json()["result"], 16)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise NotReady(f"EVM node at {rpc_url} not answering eth_chainId ({type(exc).__name__})") from None
        return f"chain {chain_id}"
    return check


def check_readiness(service: Any | None, settings: Settings, *, timeout_s: float = 2.0) -> Readiness:
    """Run every check that applies, each within ``timeout_s``. ``service`` None: still starting."""
    if service is None:
        return Readiness({"service": CheckResult(False, "starting: the service is not open yet", 0.0)})
    checks: dict[str, Callable[[Any], str]] = {"database": _database, "blockstore": _blockstore}
    if hasattr(getattr(service.lookup, "index", None), "staleness"):
        checks["index"] = _index(settings.index_max_staleness_s)
    if settings.chain_rpc_url:
        checks["chain"] = _chain(settings.chain_rpc_url, timeout_s)
    started = {name: (time.perf_counter(), _POOL.submit(check, service)) for name, check in checks.items()}
    deadline = time.monotonic() + timeout_s
    results: dict[str, CheckResult] = {}
    for name, (t0, future) in started.items():
        try:
            detail = future.result(timeout=max(0.0, deadline - time.monotonic()))
            results[name] = CheckResult(True, detail, (time.perf_counter() - t0) * 1000)
        except FutureTimeout:
            results[name] = CheckResult(False, f"no answer within {timeout_s:g} s", (time.perf_counter() - t0) * 1000)
        except Exception as exc:  # noqa: BLE001 - any failure of a part means "not ready", with its reason
            detail = str(exc) if isinstance(exc, NotReady) else f"{type(exc).__name__}: {exc}"
            results[name] = CheckResult(False, detail[:500], (time.perf_counter() - t0) * 1000)
    return Readiness(results)
