"""``provenance worker --pool prefork`` with ``PROVENANCE_WORKER_METRICS_PORT``: the ingest runs in a child process,
and the parent's /metrics reports it (prometheus-client's multiprocess mode, in a fresh directory the command makes
and removes). The solo-pool worker's own port is tested in test_chain.py."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from provenance.records import PublisherMetadata
from provenance.services import open_pipeline
from tests.fixtures.services import ROOT, free_port
from tests.workers.conftest import MakeStack, worker_env
from workers.app import close_pipeline
from workers.queue import open_queue

pytestmark = pytest.mark.slow


def _appended(url: str) -> float:
    try:
        resp = httpx.get(url, timeout=5)
    except httpx.TransportError:
        return -1.0
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            if s.name == "provenance_ingests_total" and s.labels == {"outcome": "appended"}:
                return s.value
    return 0.0


def test_a_prefork_worker_reports_its_childrens_ingests(make_stack: MakeStack, shared_photos: Path) -> None:
    port = free_port()
    stack = make_stack(PROVENANCE_WORKER_METRICS_PORT=str(port))
    pipeline = open_pipeline(stack.settings)
    pipeline.ledger.add_publisher("acme")
    queue = open_queue(stack.settings, pipeline)
    log = stack.tmp / "prefork.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "provenance.cli", "worker", "--pool", "prefork",
                                 "--concurrency", "1", "--name", f"prefork-{port}@%h"], cwd=ROOT,
                                env=worker_env(stack.env), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 90
        while _appended(url) < 0:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        assert _appended(url) == 0
        task = queue.submit((shared_photos / "kodak24" / "kodim17.png").read_bytes(), publisher="acme",
                            metadata=PublisherMetadata(title="t"))
        assert queue.wait(task, timeout_s=180).state == "succeeded"
        assert _appended(url) == 1  # counted in the child, served by the parent
        metrics_dirs = list((stack.data_dir / "worker-metrics").iterdir())
        assert len(metrics_dirs) == 1 and any(metrics_dirs[0].iterdir())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        queue.close()
        close_pipeline(pipeline)
    assert not any((stack.data_dir / "worker-metrics").iterdir())  # removed at exit: no stale counts next time
