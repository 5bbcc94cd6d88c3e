"""The ingest tasks. Each is thin: decode the job, call one ``IngestPipeline`` method, decide on retry.

One chain per image (``workers.jobs.ingest_chain``): read_c2pa -> hash (queue ``hash``) -> features -> append ->
register. Transient errors (block store or chain unreachable, database busy) are retried with exponential backoff
and jitter, up to ``ingest_max_retries``; anything else fails the ingest at once, with the step and the reason in
its status. Every step is idempotent, so a redelivered or replayed step never duplicates a record.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import redis
from celery import Task, shared_task
from sqlalchemy.exc import IntegrityError as SqlIntegrityError
from sqlalchemy.exc import OperationalError as SqlOperationalError

from provenance.errors import (
    AnchorRejectedError,
    BlockStoreUnavailableError,
    ChainUnavailableError,
    InvalidInputError,
    LogError,
    ProvenanceError,
    WitnessQuorumError,
)
from provenance.ingest import IngestPipeline
from provenance.logging import get_logger
from provenance.metrics import INGEST_STEP_SECONDS, ingest_outcome, record_error, record_ingest
from provenance.precedence import earliest_same_image
from workers.anchoring import AnchorGuard
from workers.jobs import ANCHOR_TASK, IngestJob, task_name
from workers.status import TaskStatus, save_status

log = get_logger(__name__)

#: Errors worth retrying: the service may come back. The SQL ones are the database being busy or briefly away
#: (SQLite lock timeout, PostgreSQL restart) and, on PostgreSQL, the loser of two concurrent appends of the same
#: bytes hitting the unique constraint; run again, the append finds the winner's record.
TRANSIENT: tuple[type[BaseException], ...] = (
    BlockStoreUnavailableError,
    ChainUnavailableError,
    SqlOperationalError,
    SqlIntegrityError,
)


def backoff_s(retries: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with jitter: between half and all of ``min(max_s, base_s * 2**retries)``, so waits grow
    for sure while workers that failed together do not all come back at the same moment."""
    ceiling = min(max_s, base_s * 2 ** min(retries, 32))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def failure_message(step: str, exc: BaseException, retries: int) -> str:
    if isinstance(exc, TRANSIENT):
        return f"{step}: gave up after {retries} retries: {exc}"
    if isinstance(exc, ProvenanceError):
        return f"{step}: {exc}"
    return f"{step}: internal error ({type(exc).__name__}: {exc})"


class IngestStep(Task):
    """Base of the five chain tasks: status bookkeeping, retry decisions, and the failure message."""

    step: str = ""
    throws = (InvalidInputError,)  # refused input is expected: logged without a traceback
    resultrepr_maxsize = 160  # the worker logs each result: keep the job (and its features blob) out of the log

    def run_step(self, job_obj: dict[str, Any], work: Callable[[IngestPipeline, IngestJob], IngestJob]) -> dict:
        job = IngestJob.from_obj(job_obj)
        if job.done:  # an earlier step found the record already made and registered
            return job_obj
        req = self.request
        if (req.delivery_info or {}).get("redelivered"):
            log.warning("ingest.redelivered", ingest=job.id, step=self.step, source=job.source)
        settings = self.app.provenance_settings
        save_status(self.app.backend, TaskStatus(job.id, "running", self.step, retries=job.retries, source=job.source))
        started = time.perf_counter()
        try:
            out = work(self.app.pipeline(), job)
        except TRANSIENT as exc:
            if req.retries >= settings.ingest_max_retries:  # this step's own retries
                _observe_step(self.step, "failed", started)
                raise
            _observe_step(self.step, "retry", started)
            wait = backoff_s(req.retries, settings.ingest_retry_backoff_s, settings.ingest_retry_backoff_max_s)
            again = job.evolve(retries=job.retries + 1)
            log.warning("ingest.retry", ingest=job.id, step=self.step, retry=req.retries + 1, wait_s=round(wait, 2),
                        error=str(exc))
            save_status(self.app.backend, TaskStatus(job.id, "running", self.step, retries=again.retries,
                                                     error=f"retrying in {wait:.1f} s: {exc}", source=job.source))
            raise self.retry(args=(again.to_obj(),), exc=exc, countdown=wait,
                             max_retries=settings.ingest_max_retries) from exc
        except BaseException:
            _observe_step(self.step, "failed", started)
            raise
        _observe_step(self.step, "ok", started)
        if out.done or self.step == "register":
            result = out.result
            save_status(self.app.backend, TaskStatus(job.id, "succeeded", self.step, result.cid, result.duplicate,
                                                     retries=out.retries, source=job.source)
                        .with_details(out.details))
            record_ingest("duplicate" if result.duplicate else "appended", _since(job), details=out.details)
        return out.to_obj()

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: Any) -> None:
        job = IngestJob.from_obj(args[0])
        message = failure_message(self.step, exc, self.request.retries)
        log.warning("ingest.failed", ingest=job.id, step=self.step, source=job.source, error=message)
        record_ingest(ingest_outcome(exc), _since(job))
        record_error(exc)
        save_status(self.app.backend, TaskStatus(job.id, "failed", self.step, error=message, retries=job.retries,
                                                 source=job.source))


def _image(pipeline: IngestPipeline, job: IngestJob) -> bytes:
    return pipeline.ledger.blockstore.get(job.image_cid)


def _observe_step(step: str, outcome: str, started: float) -> None:
    INGEST_STEP_SECONDS.labels(step, outcome).observe(time.perf_counter() - started)


def _since(job: IngestJob) -> float:
    return 0.0 if job.submitted_at is None else time.time() - job.submitted_at


def _details(pipeline: IngestPipeline, job: IngestJob, result, prior=None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """``IngestReport.details()`` of a finished chain: the earlier registration and the metadata conflict."""
    from provenance.ingest import IngestReport

    return IngestReport(result, prior, pipeline.metadata_conflict(result, job.publisher_metadata)).details()


# --- the chain -----------------------------------------------------------------------------------------------------
@shared_task(bind=True, base=IngestStep, name=task_name("read_c2pa"), step="read_c2pa")
def read_c2pa(self: IngestStep, job: dict[str, Any]) -> dict:
    def work(p: IngestPipeline, j: IngestJob) -> IngestJob:
        data = _image(p, j)
        p.check(data, source=j.source)
        existing = p.ledger.find_existing(data, j.publisher)
        if existing is not None and p.lookup.is_registered(existing.cid):
            prior = earliest_same_image(p.ledger, data, other_than=j.publisher)
            return j.with_result(existing).evolve(done=True, details=_details(p, j, existing, prior))
        return j.evolve(c2pa=p.read_c2pa(data))

    return self.run_step(job, work)


@shared_task(bind=True, base=IngestStep, name=task_name("hash"), step="hash")
def hash_image(self: IngestStep, job: dict[str, Any]) -> dict:
    return self.run_step(job, lambda p, j: j.with_hashes(p.hash(_image(p, j))))


@shared_task(bind=True, base=IngestStep, name=task_name("features"), step="features")
def extract_features(self: IngestStep, job: dict[str, Any]) -> dict:
    return self.run_step(job, lambda p, j: j.with_features(p.features(_image(p, j))))


@shared_task(bind=True, base=IngestStep, name=task_name("append"), step="append")
def append(self: IngestStep, job: dict[str, Any]) -> dict:
    def work(p: IngestPipeline, j: IngestJob) -> IngestJob:
        data = _image(p, j)
        # Another publisher's earlier record of this image: flagged in the result, or refused (the policy).
        prior = None if p.ledger.find_existing(data, j.publisher) else p.precedence(
            data, publisher=j.publisher, hashes=j.perceptual_hashes)
        result = p.append(data, publisher=j.publisher, metadata=j.publisher_metadata,
                          hashes=j.perceptual_hashes, c2pa=j.c2pa, source=j.source)
        if not result.duplicate:
            _maybe_trigger_anchor(self, p, tree_size=result.leaf_index + 1)
        return j.with_result(result).evolve(details=_details(p, j, result, prior))

    return self.run_step(job, work)


@shared_task(bind=True, base=IngestStep, name=task_name("register"), step="register")
def register(self: IngestStep, job: dict[str, Any]) -> dict:
    def work(p: IngestPipeline, j: IngestJob) -> IngestJob:
        p.register(j.result, publisher=j.publisher, hashes=j.perceptual_hashes, features=j.features)
        return j

    return self.run_step(job, work)


# --- anchoring -------------------------------------------------------------------------------------------------------
def _maybe_trigger_anchor(task: Task, pipeline: IngestPipeline, *, tree_size: int) -> None:
    try:
        if AnchorGuard(task.app.provenance_settings).should_trigger(pipeline.ledger, tree_size):
            task.app.send_task(ANCHOR_TASK, kwargs={"reason": f"{tree_size} leaves"}, priority=0)
    except (redis.RedisError, ProvenanceError) as exc:  # the record is in; the periodic anchor will cover it
        log.warning("anchor.trigger_failed", error=str(exc))


@shared_task(bind=True, name=ANCHOR_TASK)
def anchor_checkpoint(self: Task, reason: str = "periodic") -> dict[str, Any]:
    """Checkpoint the log and anchor that checkpoint, unless another worker is anchoring right now."""
    settings = self.app.provenance_settings
    with AnchorGuard(settings).exclusive() as held:
        if not held:
            return {"skipped": "another anchor is running"}
        ledger = self.app.pipeline().ledger
        try:
            cp = ledger.anchor()
        except LogError as exc:  # nothing to anchor yet
            return {"skipped": str(exc)}
        except AnchorRejectedError as exc:  # a larger tree is on chain already (another anchorer got there first)
            log.warning("anchor.rejected", reason=reason, error=str(exc))
            return {"skipped": str(exc)}
        except (ChainUnavailableError, WitnessQuorumError) as exc:  # nothing published yet: retry with back-off
            if self.request.retries >= settings.ingest_max_retries:
                raise
            wait = backoff_s(self.request.retries, settings.ingest_retry_backoff_s, settings.ingest_retry_backoff_max_s)
            raise self.retry(exc=exc, countdown=wait, max_retries=settings.ingest_max_retries) from exc
    receipt = cp.anchor
    log.info("anchor.done", reason=reason, tree_size=cp.tree_size, tx=receipt.tx_hash if receipt else None)
    return {"tree_size": cp.tree_size, "tx": receipt.tx_hash if receipt else None}
