"""A transient outage is retried: the worker reaches a real IPFS daemon through a proxy that is down at first.

The test process (like an API host) stores the image on the daemon directly; the worker's path to the daemon
refuses connections until the test sees the task retrying, then heals. No test-only hook in the code under test.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from provenance.records import PublisherMetadata
from provenance.services import open_pipeline
from tests.fixtures.services import free_port
from tests.workers.conftest import MakeStack, TcpProxy, wait_for
from workers.app import close_pipeline
from workers.queue import CeleryQueue

pytestmark = pytest.mark.ipfs


def test_block_store_outage_is_retried_with_backoff_then_succeeds(make_stack: MakeStack, ipfs_api_url: str,
                                                                   shared_photos: Path) -> None:
    daemon = urlsplit(ipfs_api_url)
    proxy = TcpProxy(free_port(), (daemon.hostname or "127.0.0.1", daemon.port or 5001))
    stack = make_stack(PROVENANCE_BLOCKSTORE="ipfs", PROVENANCE_IPFS_API_URL=f"http://127.0.0.1:{proxy.port}",
                       PROVENANCE_IPFS_TIMEOUT_S="10")
    direct = stack.settings.model_copy(update={"ipfs_api_url": ipfs_api_url})
    pipeline = open_pipeline(direct)
    pipeline.ledger.add_publisher("acme")
    queue = CeleryQueue(pipeline, stack.settings)
    stack.worker().start()
    try:
        data = (shared_photos / "kodak24" / "kodim08.png").read_bytes()
        task_id = queue.submit(data, publisher="acme", metadata=PublisherMetadata(title="t"), source="k8")

        retrying = wait_for(lambda: (st := queue.status(task_id)).retries >= 2 and st, timeout_s=60,
                            what="the first step to retry twice")
        assert retrying.state == "running" and retrying.step == "read_c2pa"
        assert retrying.error is not None and "IPFS daemon unreachable" in retrying.error
        assert f"127.0.0.1:{proxy.port}" in retrying.error

        proxy.start()  # the daemon is back
        st = queue.wait(task_id, timeout_s=60)
        assert st.state == "succeeded", st
        assert st.retries >= 2  # counted over the whole chain
        with pipeline.ledger.reader.connect() as conn:
            stored = pipeline.ledger.store.find_by_image(conn, "acme", hashlib.sha256(data).hexdigest())
        assert stored is not None and stored.cid == st.record_cid
        assert pipeline.ledger.blockstore.has(st.record_cid)  # the record itself went to IPFS through the proxy
        log = stack.workers[0].log()
        assert log.count("ingest.retry") >= 2
    finally:
        proxy.stop()
        queue.close()
        close_pipeline(pipeline)
