"""A worker killed with SIGKILL mid-ingest loses nothing and duplicates nothing.

Tasks are acknowledged only after they finish (``task_acks_late``), so the task the worker was running stays in
the broker's unacknowledged set; once the visibility timeout (12 s here, an hour by default) has passed, the next
worker takes it again. Every step is idempotent, so whatever the killed worker had already written counts once.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from provenance.records import PublisherMetadata
from provenance.services import open_pipeline
from tests.workers.conftest import MakeStack, wait_for
from workers.app import close_pipeline
from workers.queue import CeleryQueue

N_IMAGES = 6
VISIBILITY_S = 12


def test_sigkill_mid_ingest_loses_nothing(make_stack: MakeStack, shared_photos: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    stack = make_stack(PROVENANCE_BROKER_VISIBILITY_TIMEOUT_S=str(VISIBILITY_S))
    pipeline = open_pipeline(stack.settings)
    pipeline.ledger.add_publisher("acme")
    queue = CeleryQueue(pipeline, stack.settings)
    redis = stack.redis.client()
    images = [(shared_photos / "kodak24" / f"kodim{n:02d}.png").read_bytes() for n in range(10, 10 + N_IMAGES)]
    first = stack.worker().start()
    try:
        ids = [queue.submit(data, publisher="acme", metadata=PublisherMetadata(), source=f"img{i}")
               for i, data in enumerate(images)]

        # Kill once some images are done and another is mid-chain, inside its slowest step (the ~0.3 s hash), with
        # that task unacknowledged.
        def mid_ingest():  # type: ignore[no-untyped-def]
            states = queue.statuses(ids)
            done = sum(st.state == "succeeded" for st in states.values())
            running = [st for st in states.values() if st.state == "running"]
            unacked = redis.hlen("unacked")
            hashing = any(st.step == "hash" for st in running)
            return done >= 2 and hashing and unacked and (done, running, unacked)

        done, running, unacked = wait_for(mid_ingest, timeout_s=90, what="a worker in the middle of the ingest",
                                          poll_s=0.02)
        first.kill()
        in_flight_steps = [(st.source, st.step) for st in running]
        unfinished = N_IMAGES - done
        killed_at = time.monotonic()

        second = stack.worker().start()
        def all_finished():  # type: ignore[no-untyped-def]
            states = queue.statuses(ids)
            return all(st.finished for st in states.values()) and states

        final = wait_for(all_finished, timeout_s=90, what="every image to finish after the restart")
        took = time.monotonic() - killed_at

        assert [st.state for st in final.values()] == ["succeeded"] * N_IMAGES
        redelivered = [line.split("ingest.redelivered", 1)[1].strip() for line in second.log().splitlines()
                       if "ingest.redelivered" in line]
        assert redelivered  # the task the killed worker held came back
        with pipeline.ledger.reader.connect() as conn:
            # no duplicate leaf: the publisher's key registration, then one leaf per image
            assert pipeline.ledger.log.size(conn) == N_IMAGES + 1
            assert pipeline.ledger.store.count(conn) == N_IMAGES
            for data, st in zip(images, final.values()):
                stored = pipeline.ledger.store.find_by_image(conn, "acme", hashlib.sha256(data).hexdigest())
                assert stored is not None and stored.cid == st.record_cid
        assert all(pipeline.lookup.is_registered(st.record_cid) for st in final.values())  # type: ignore[arg-type]
        wait_for(lambda: redis.hlen("unacked") == 0, timeout_s=10, what="every task acknowledged")  # ack follows status
        with capsys.disabled():  # the figures for the report
            print("\nkill test:", json.dumps({"images": N_IMAGES, "succeeded_before_kill": done,
                                              "unfinished_at_kill": unfinished, "unacked_at_kill": unacked,
                                              "running_at_kill": in_flight_steps, "redelivered": redelivered,
                                              "records": N_IMAGES, "seconds_to_recover": round(took, 1)}))
    finally:
        queue.close()
        close_pipeline(pipeline)
