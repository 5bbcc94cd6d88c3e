"""``provenance worker``: run a Celery ingest worker with this CLI's settings (``--data-dir`` included).

Registered in ``provenance/cli.py``; nothing here reads settings or imports Celery until the command runs.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click

QUEUES = ("ingest", "hash")
POOLS = ("solo", "prefork", "threads")


def _queues(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    names = [q.strip() for q in value.split(",") if q.strip()]
    unknown = sorted(set(names) - set(QUEUES))
    if not names or unknown:
        raise click.BadParameter(f"choose from {', '.join(QUEUES)} (comma-separated); got {value!r}")
    return ",".join(dict.fromkeys(names))


def worker_argv(*, queues: str, concurrency: int | None, pool: str, beat: bool, name: str | None,
                loglevel: str) -> list[str]:
    argv = ["worker", f"--queues={queues}", f"--pool={pool}", f"--loglevel={loglevel}",
            "--without-gossip", "--without-mingle"]  # cluster chatter we do not use
    if concurrency is not None:
        argv.append(f"--concurrency={concurrency}")
    if name:
        argv.append(f"--hostname={name}")
    if beat:
        argv.append("--beat")
    return argv


def _multiprocess_metrics_dir(data_dir: Path) -> None:
    """With a prefork pool the tasks run in child processes: their metrics reach the parent's /metrics only through
    prometheus-client's multiprocess mode. Give it a fresh directory (no counts of an earlier run) unless the
    operator chose one; prometheus-client reads the variable when first imported, which is after this."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    root = Path(data_dir) / "worker-metrics"
    root.mkdir(parents=True, exist_ok=True)
    path = tempfile.mkdtemp(prefix=f"pid{os.getpid()}-", dir=root)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    atexit.register(shutil.rmtree, path, ignore_errors=True)


@click.command("worker")
@click.option("--queues", default="ingest,hash", show_default=True, callback=_queues,
              help="Queues to consume: 'ingest' (C2PA, features, append, register, anchor) and/or 'hash' (the "
                   "perceptual hashes). GPU workers take 'hash' alone; CPU workers take both, 'hash' as fallback.")
@click.option("--concurrency", type=click.IntRange(min=1), default=None,
              help="Worker processes or threads. Default: the number of CPUs (1 with --pool solo).")
@click.option("--pool", type=click.Choice(POOLS), default="prefork", show_default=True,
              help="prefork: one process per slot (CPU work); threads: one process; solo: no concurrency.")
@click.option("--beat", is_flag=True,
              help="Also run the periodic anchor schedule in this worker. Exactly one worker should.")
@click.option("--name", default=None, help="Node name (default celery@HOST); needed for two workers on one host.")
@click.pass_obj
def worker(state: Any, queues: str, concurrency: int | None, pool: str, beat: bool, name: str | None) -> None:
    """Run an ingest worker (Celery, broker PROVENANCE_BROKER_URL) until stopped.

    Torch gets CPUs / slots threads per slot unless OMP_NUM_THREADS is set: more threads than cores spin against
    each other (a hash then takes ~10x longer)."""
    from workers.app import create_app

    cpus = os.cpu_count() or 1
    slots = concurrency or (1 if pool == "solo" else cpus)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cpus // slots)))  # read when a task first imports torch
    settings = state.settings
    if settings.worker_metrics_port is not None and pool == "prefork":
        _multiprocess_metrics_dir(settings.data_dir)
    app = create_app(settings)
    app.worker_main(worker_argv(queues=queues, concurrency=concurrency, pool=pool, beat=beat, name=name,
                                loglevel=settings.log_level))
