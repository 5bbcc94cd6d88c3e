"""Prometheus metrics: what is counted where, and the exposition (``GET /metrics``, the worker metrics port).

Counters and histograms live in prometheus-client's process-wide registry and move where the work happens:

* ``provenance_ingests_total{outcome}`` and ``provenance_ingest_duration_seconds{outcome}`` (acceptance to finish;
  outcome ``appended``, ``duplicate``, ``refused``, ``failed``): the in-process queue and the Celery workers;
* ``provenance_ingest_step_duration_seconds{step,outcome}``: each step of a Celery ingest chain;
* ``provenance_ingest_earlier_registrations_total{match}``: uploads another publisher registered first;
* ``provenance_lookups_total{verdict}`` and ``provenance_lookup_duration_seconds{verdict}`` (verdict ``match``,
  ``altered``, ``same_scene``, ``no_match``; ``refused``: bad input; ``busy``: turned away for capacity;
  ``error``): ``POST /v1/lookup``;
* ``provenance_errors_total{part}``: server-side failures by the part that failed (database, blockstore, chain,
  queue, index, log, witnesses, internal).

Gauges that describe shared state (queue depth, index size and staleness, log size, the latest checkpoint's age and
anchor) are read from the service at scrape time by :class:`ServiceCollector`, so they are never stale and need no
bookkeeping.

Several processes (a prefork worker's children, or every process of one host): when ``PROMETHEUS_MULTIPROC_DIR`` is
set (prometheus-client's own variable, read when it is first imported), each process writes its counters there and
:func:`exposition_registry` sums them at scrape time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from provenance.logging import get_logger

__all__ = ["ERRORS", "INGESTS", "LOOKUPS", "ServiceCollector", "error_part", "exposition_registry",
           "ingest_outcome", "observe_lookup", "record_error", "record_ingest", "serve_worker_metrics"]

log = get_logger(__name__)

disable_created_metrics()  # no *_created series: half the exposition, and nothing our dashboards need

INGEST_OUTCOMES = ("appended", "duplicate", "refused", "failed")
LOOKUP_VERDICTS = ("match", "altered", "same_scene", "no_match", "refused", "busy", "error")
ERROR_PARTS = ("database", "blockstore", "chain", "queue", "index", "log", "witnesses", "internal")

INGESTS = Counter("provenance_ingests", "Ingests finished, by outcome.", ["outcome"])
INGEST_SECONDS = Histogram(
    "provenance_ingest_duration_seconds", "Seconds from an upload's acceptance (202) to its ingest finishing.",
    ["outcome"], buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600))
INGEST_STEP_SECONDS = Histogram(
    "provenance_ingest_step_duration_seconds", "Seconds one step of a Celery ingest chain ran.", ["step", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300))
EARLIER_REGISTRATIONS = Counter(
    "provenance_ingest_earlier_registrations", "Uploads of an image another publisher registered first.", ["match"])
LOOKUPS = Counter("provenance_lookups", "Lookups answered (POST /v1/lookup), by verdict.", ["verdict"])
LOOKUP_SECONDS = Histogram(
    "provenance_lookup_duration_seconds", "Seconds a lookup took, upload parsing excluded.", ["verdict"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120))
ERRORS = Counter("provenance_errors", "Server-side failures, by the part that failed.", ["part"])

for _o in INGEST_OUTCOMES:  # every series exists from the start (at 0), so a rate never misses its first event
    INGESTS.labels(_o)
for _v in LOOKUP_VERDICTS:
    LOOKUPS.labels(_v)
for _p in ERROR_PARTS:
    ERRORS.labels(_p)


# --- what the code calls ---------------------------------------------------------------------------------------------
def error_part(exc: BaseException) -> str:
    """The part a server-side failure belongs to (one of :data:`ERROR_PARTS`)."""
    from sqlalchemy.exc import SQLAlchemyError

    from provenance import errors as e
    from provenance.index.errors import HashIndexError

    for cls, part in ((e.BlockStoreError, "blockstore"), (e.AnchorError, "chain"), (e.StoreError, "database"),
                      (SQLAlchemyError, "database"), (HashIndexError, "index"), (e.LogError, "log"),
                      (getattr(e, "WitnessError", ()), "witnesses")):
        if cls and isinstance(exc, cls):
            return part
    if type(exc).__module__.startswith("workers.") and type(exc).__name__.startswith("Queue"):
        return "queue"
    return "internal"


def record_error(exc: BaseException, part: str | None = None) -> None:
    """Count a failure that is the service's, not the caller's: bad input (``InvalidInputError``) is not counted."""
    from provenance.errors import InvalidInputError

    if isinstance(exc, InvalidInputError):
        return
    ERRORS.labels(part or error_part(exc)).inc()


def ingest_outcome(exc: BaseException) -> str:
    """``refused`` for input the ingest may not take (not an image, a refused duplicate...), else ``failed``."""
    from provenance.errors import InvalidInputError

    return "refused" if isinstance(exc, InvalidInputError) else "failed"


def record_ingest(outcome: str, seconds: float, *, details: dict[str, Any] | None = None) -> None:
    INGESTS.labels(outcome).inc()
    INGEST_SECONDS.labels(outcome).observe(max(0.0, seconds))
    if details and details.get("earlier_match"):
        EARLIER_REGISTRATIONS.labels(str(details["earlier_match"])).inc()


@dataclass
class _LookupObservation:
    verdict: str = "error"


@contextmanager
def observe_lookup() -> Iterator[_LookupObservation]:
    """Time a lookup and count it by the verdict the caller sets; an exception counts as ``refused`` (bad input)
    or ``error``, and re-raises."""
    from provenance.errors import InvalidInputError

    seen = _LookupObservation()
    start = time.perf_counter()
    try:
        yield seen
    except InvalidInputError:
        seen.verdict = "refused"
        raise
    except BaseException as exc:
        # Turned away for capacity (the HTTP layer's own 429 / 503 with Retry-After) is not a failure.
        seen.verdict = "busy" if getattr(exc, "status", None) in (429, 503) else "error"
        raise
    finally:
        verdict = seen.verdict if seen.verdict in LOOKUP_VERDICTS else "error"
        LOOKUPS.labels(verdict).inc()
        LOOKUP_SECONDS.labels(verdict).observe(time.perf_counter() - start)


# --- gauges read at scrape time ----------------------------------------------------------------------------------------
class ServiceCollector:
    """Queue depth, index size and staleness, log size and the latest checkpoint, read from the service when
    Prometheus scrapes. ``get_service`` returns the opened service or None (a scrape never opens it); a part that
    cannot be read is left out of that scrape and counted in ``provenance_errors_total``."""

    def __init__(self, get_service: Callable[[], Any | None]) -> None:
        self.get_service = get_service

    def describe(self) -> list[Metric]:
        return []  # read at scrape time: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        service = self.get_service()
        if service is None:
            return
        for part in (self._queue, self._index, self._log):
            try:
                yield from part(service)
            except Exception as exc:  # noqa: BLE001 - a part down must not fail the whole scrape
                record_error(exc)
                log.warning("metrics.part_unreadable", part=part.__name__.strip("_"), error=f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _queue(service: Any) -> Iterator[Metric]:
        depth_of = getattr(service.queue, "depth", None)
        if not callable(depth_of):
            return
        depth = GaugeMetricFamily("provenance_ingest_queue_depth", "Ingest work waiting (pending) and running: "
                                  "images in-process; chain steps (messages) with Celery.", labels=["state"])
        for state, n in sorted(depth_of().items()):
            depth.add_metric([state], n)
        yield depth

    @staticmethod
    def _index(service: Any) -> Iterator[Metric]:
        index = getattr(service.lookup, "index", None)
        if index is None or not hasattr(index, "staleness"):
            return
        size = GaugeMetricFamily("provenance_index_entries", "Live codes in this process's hash index.",
                                 labels=["channel"])
        for channel in index.channels():
            loaded = index.index_for(channel)
            size.add_metric([channel], len(loaded) if loaded is not None else 0)
        yield size
        stale = GaugeMetricFamily("provenance_index_staleness_seconds", "Age of the oldest catalog entry this "
                                  "process's hash index has not loaded yet (0: up to date).", labels=["channel"])
        for channel, lag in sorted(index.staleness().items()):
            stale.add_metric([channel], lag.seconds)
        yield stale

    @staticmethod
    def _log(service: Any) -> Iterator[Metric]:
        ledger = service.ledger
        with ledger.reader.connect() as conn:
            size = ledger.log.size(conn)
            cp = ledger.store.checkpoint_summary(conn)
        yield GaugeMetricFamily("provenance_log_size", "Leaves in the transparency log.", value=size)
        if cp is None:
            return
        now = datetime.now(timezone.utc)
        yield GaugeMetricFamily("provenance_checkpoint_tree_size", "Tree size of the latest checkpoint.",
                                value=cp.tree_size)
        yield GaugeMetricFamily("provenance_checkpoint_age_seconds", "Seconds since the latest checkpoint was signed.",
                                value=max(0.0, (now - cp.created_at).total_seconds()))
        yield GaugeMetricFamily("provenance_checkpoint_anchored", "1 when the latest checkpoint is anchored on chain.",
                                value=1 if cp.anchored else 0)
        yield GaugeMetricFamily("provenance_checkpoint_anchor_ephemeral", "1 when the latest anchor is on the "
                                "in-process EVM (no durable timestamp).", value=1 if cp.ephemeral else 0)
        yield GaugeMetricFamily("provenance_log_unanchored_leaves", "Leaves no anchored checkpoint covers yet.",
                                value=max(0, size - cp.anchored_tree_size))


class _Forward:
    """Everything another registry holds (the process-wide one), inside a registry of our own."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        yield from self.source.collect()


def exposition_registry(*collectors: Any) -> CollectorRegistry:
    """What one scrape shows: this process's metrics (or, with ``PROMETHEUS_MULTIPROC_DIR``, the sum over every
    process writing there), plus ``collectors``."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Forward(REGISTRY))
    for collector in collectors:
        registry.register(collector)
    return registry


def serve_worker_metrics(host: str, port: int) -> None:
    """``/metrics`` of a worker on ``host:port`` (a daemon thread of this process)."""
    start_http_server(port, addr=host, registry=exposition_registry())
    log.info("metrics.serving", address=f"http://{host}:{port}/metrics",
             multiprocess=bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR")))
