"""The Celery app of the ingest queue, configured from :class:`provenance.config.Settings`.

``create_app(settings)`` builds one; ``celery -A workers.app worker`` finds ``workers.app.app``, which is built on
first access from ``get_settings()`` (the environment), so importing this module reads no settings. ``provenance
worker`` builds its app from the CLI's settings instead (``--data-dir`` included).

Delivery guarantees: tasks are acknowledged after they finish (``task_acks_late``), and a task whose worker died is
handed out again (``task_reject_on_worker_lost`` for a killed prefork child; the broker's visibility timeout for a
killed worker). Every step is idempotent, so running one twice never duplicates a record.
"""

from __future__ import annotations

import threading
import warnings
from typing import TYPE_CHECKING, Any

from celery import Celery, signals
from kombu.utils.url import maybe_sanitize_url

from workers.jobs import ANCHOR_TASK, HASH_QUEUE, INGEST_QUEUE, PRIORITY_STEPS, task_name

if TYPE_CHECKING:
    from provenance.config import Settings
    from provenance.ingest import IngestPipeline

# redis-py 8 deprecates SETEX, which Celery 5.7's Redis result backend still calls on every status write.
warnings.filterwarnings("ignore", message="Call to deprecated setex", category=DeprecationWarning)

__all__ = ["IngestApp", "close_pipeline", "create_app", "safe_url"]


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return str(maybe_sanitize_url(url))


class IngestApp(Celery):
    """A Celery app that knows the settings it was built from and, inside a worker, opens the pipeline once."""

    def __init__(self, settings: Settings) -> None:
        super().__init__("provenance", broker=settings.broker_url, backend=settings.result_backend,
                         include=["workers.tasks"])
        self.provenance_settings = settings
        self._pipeline: IngestPipeline | None = None
        self._pipeline_lock = threading.Lock()
        self.conf.update(_celery_config(settings))

    def pipeline(self) -> IngestPipeline:
        """The worker's ingest pipeline (ledger, hashers, lookup index), opened on first use: in a prefork worker
        that is inside each child, after the fork, so no database connection or model is shared across it."""
        with self._pipeline_lock:
            if self._pipeline is None:
                from provenance.services import open_pipeline

                self._pipeline = open_pipeline(self.provenance_settings)
            return self._pipeline

    def close_pipeline(self) -> None:
        with self._pipeline_lock:
            if self._pipeline is not None:
                close_pipeline(self._pipeline)
                self._pipeline = None


def close_pipeline(pipeline: IngestPipeline) -> None:
    close_index = getattr(pipeline.lookup.index, "close", None)  # HashIndex has none yet: faiss lives in memory
    if close_index is not None:
        close_index()
    pipeline.ledger.close()


def _celery_config(settings: Settings) -> dict[str, Any]:
    visibility = settings.broker_visibility_timeout_s
    return {
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Tasks store no results: each ingest's status is one entry written by its chain (workers/status.py).
        "task_ignore_result": True,
        "task_default_queue": INGEST_QUEUE,
        "task_routes": {task_name("hash"): {"queue": HASH_QUEUE}},
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": visibility,
            "queue_order_strategy": "priority",
            "priority_steps": PRIORITY_STEPS,
            # Look for messages of dead workers every ~visibility/10 s (kombu's default is every ~100 s), and never
            # let a sweep lock left by a killed worker outlive the timeout it guards.
            "unacked_restore_interval": max(1, min(10, visibility // 10)),
            "unacked_restore_throttle": 1,
            "unacked_mutex_expire": max(1, min(300, visibility)),
        },
        "beat_schedule": {
            "anchor-latest-checkpoint": {
                "task": ANCHOR_TASK,
                "schedule": settings.anchor_every_s,
                "kwargs": {"reason": "periodic"},
                # Workers busy for longer than the period would otherwise find a pile of them: keep the latest.
                "options": {"expires": settings.anchor_every_s},
            },
        },
        "beat_schedule_filename": str(settings.data_dir / "celerybeat-schedule"),
        "enable_utc": True,
        "timezone": "UTC",
        "worker_redirect_stdouts_level": "INFO",
    }


def create_app(settings: Settings) -> IngestApp:
    return IngestApp(settings)


@signals.worker_process_shutdown.connect
@signals.worker_shutdown.connect
def _close_pipeline(**_: Any) -> None:
    from celery import current_app

    app = current_app._get_current_object()
    if isinstance(app, IngestApp):
        app.close_pipeline()


@signals.worker_init.connect
def _serve_metrics(sender: Any = None, **_: Any) -> None:
    """``PROVENANCE_WORKER_METRICS_PORT``: this worker's Prometheus /metrics (with a prefork pool, its children's
    too when PROMETHEUS_MULTIPROC_DIR is set: ``provenance worker`` sets it)."""
    app = getattr(sender, "app", None)
    if not isinstance(app, IngestApp) or app.provenance_settings.worker_metrics_port is None:
        return
    from provenance.metrics import serve_worker_metrics

    settings = app.provenance_settings
    serve_worker_metrics(settings.worker_metrics_host, settings.worker_metrics_port)


_app: IngestApp | None = None
_app_lock = threading.Lock()


def __getattr__(name: str) -> IngestApp:
    # ``celery -A workers.app`` reads ``workers.app.app``: build it then, from the environment, not at import.
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _app_lock:
        if _app is None:
            from provenance.config import get_settings

            _app = create_app(get_settings())
        return _app
