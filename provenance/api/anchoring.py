"""Periodic checkpoint + anchor inside the API process, on the embedded default only.

There the chain is an in-process EVM that only this process can reach and the queue runs in this process too, so
nothing else can anchor: the server signs and anchors a checkpoint every ``anchor_every_s`` when records are
waiting. With a real chain (the deployment's ``anchorer``) or the Celery queue (celery beat) others do it, and two
anchorers racing would only waste gas on transactions the contract refuses.
"""

from __future__ import annotations

import asyncio

from starlette.concurrency import run_in_threadpool

from provenance.config import Settings
from provenance.errors import ProvenanceError, WitnessQuorumError
from provenance.ledger import Ledger
from provenance.logging import get_logger

log = get_logger(__name__)


def anchor_interval(settings: Settings) -> float | None:
    """Seconds between the server's anchor runs, or None when something else anchors."""
    if settings.chain_rpc_url or settings.queue != "inprocess":
        return None
    return settings.anchor_every_s


def anchor_if_grown(ledger: Ledger) -> bool:
    """Checkpoint and anchor when the log has leaves that no anchored checkpoint covers. True if it anchored."""
    with ledger.reader.connect() as conn:
        size = ledger.log.size(conn)
        latest = ledger.store.latest_checkpoint(conn, ledger.config.log_id)
    if size == 0 or (latest is not None and latest.tree_size == size and latest.anchor is not None):
        return False
    ledger.anchor()
    return True


def retry_wait_s(failures: int, interval_s: float, base_s: float = 2.0) -> float:
    """Seconds before the next anchor run: the interval normally; after ``failures`` runs in a row that missed the
    witness quorum, an exponential back-off (2, 4, 8 ... s) capped at the interval, so publication resumes soon
    after the witnesses are back."""
    if failures <= 0:
        return interval_s
    return min(interval_s, base_s * 2 ** min(failures - 1, 32))


async def anchor_loop(get_ledger, interval_s: float) -> None:  # type: ignore[no-untyped-def]
    failures = 0
    while True:
        await asyncio.sleep(retry_wait_s(failures, interval_s))
        try:
            await run_in_threadpool(lambda: anchor_if_grown(get_ledger()))
            failures = 0
        except WitnessQuorumError as exc:  # nothing published; records are safe in the log: ask again, backing off
            failures += 1
            log.warning("api.anchor.witnesses", error=str(exc), retry_in_s=retry_wait_s(failures, interval_s))
        except ProvenanceError as exc:  # a chain or store outage must not stop the loop: try again next time
            failures = 0
            log.warning("api.anchor.failed", error=str(exc))
