"""The Celery app's configuration, the chain's shape, retry policy, status rules, anchor guards and the CLI command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from provenance.config import Settings
from provenance.errors import BlockStoreUnavailableError, UnknownPublisherError
from tests.fixtures.services import ROOT
from tests.workers.conftest import ClaimDb
from workers.anchoring import AnchorGuard
from workers.app import create_app
from workers.cli import worker, worker_argv
from workers.jobs import STEPS, IngestJob, ingest_chain, task_name
from workers.status import TaskStatus, may_replace
from workers.tasks import backoff_s, failure_message


def test_app_is_configured_for_at_least_once_json_delivery(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, broker_url="redis://h:1/3", result_backend="redis://h:1/4",
                        anchor_every_s=42, broker_visibility_timeout_s=600)
    conf = create_app(settings).conf
    assert conf.broker_url == "redis://h:1/3" and conf.result_backend == "redis://h:1/4"
    assert (conf.task_serializer, conf.result_serializer, conf.accept_content) == ("json", "json", ["json"])
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] == 600
    assert conf.beat_schedule["anchor-latest-checkpoint"]["schedule"] == 42
    assert conf.beat_schedule["anchor-latest-checkpoint"]["task"] == "provenance.anchor_checkpoint"


def test_hash_goes_to_the_hash_queue_and_everything_else_to_ingest(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    for step in STEPS:
        route = app.amqp.router.route({}, task_name(step))
        assert route["queue"].name == ("hash" if step == "hash" else "ingest")
    assert app.amqp.router.route({}, "provenance.anchor_checkpoint")["queue"].name == "ingest"


def test_one_chain_per_image_carries_the_cid_not_the_bytes(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    job = IngestJob(id="i", image_cid="bafkrei", publisher="acme", metadata={"title": "t"}, source="s")
    sig = ingest_chain(app, job)
    assert [t.task for t in sig.tasks] == [task_name(s) for s in STEPS]
    assert sig.tasks[0].args == (job.to_obj(),)
    priorities = [t.options["priority"] for t in sig.tasks]
    assert priorities[0] == max(priorities) and priorities[-1] == 0  # later steps are served first
    assert IngestJob.from_obj(job.to_obj()) == job


def test_backoff_grows_exponentially_with_jitter_up_to_a_cap() -> None:
    for n in range(12):
        ceiling = min(60.0, 2.0 * 2**n)
        waits = [backoff_s(n, 2.0, 60.0) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
    assert len({backoff_s(3, 2.0, 60.0) for _ in range(20)}) > 1


def test_failure_messages_name_the_step_and_the_reason() -> None:
    down = BlockStoreUnavailableError("IPFS daemon unreachable", where="http://ipfs:5001")
    assert failure_message("hash", down, 8) == (
        "hash: gave up after 8 retries: IPFS daemon unreachable (at http://ipfs:5001)")
    assert failure_message("append", UnknownPublisherError("who?"), 0) == "append: who?"
    assert failure_message("features", KeyError("x"), 0) == "features: internal error (KeyError: 'x')"


def test_a_finished_status_is_never_made_running_again() -> None:
    running, ok, failed = (TaskStatus("i", s) for s in ("running", "succeeded", "failed"))
    assert may_replace(None, running) and may_replace(running, ok) and may_replace(failed, ok)
    assert not may_replace(ok, running) and not may_replace(ok, failed) and not may_replace(failed, running)


def test_anchor_guard_triggers_once_and_admits_one_anchorer(claim_redis_db: ClaimDb, tmp_path: Path) -> None:
    db = claim_redis_db()
    guard = AnchorGuard(Settings(data_dir=tmp_path, broker_url=db.url, anchor_every_records=10))

    class FakeLedger:  # only what records_since_checkpoint reads: a log whose last checkpoint is at 5 leaves
        class config:
            log_id = b"x"

        class store:
            @staticmethod
            def latest_checkpoint(conn, log_id):  # type: ignore[no-untyped-def]
                return type("Cp", (), {"tree_size": 5})()

        class reader:
            @staticmethod
            def connect():  # type: ignore[no-untyped-def]
                import contextlib

                return contextlib.nullcontext()

    ledger = FakeLedger()
    assert not guard.should_trigger(ledger, 14)  # type: ignore[arg-type]  # 9 waiting
    assert guard.should_trigger(ledger, 15)  # type: ignore[arg-type]
    assert not guard.should_trigger(ledger, 16)  # type: ignore[arg-type]  # one anchor is already asked for
    with guard.exclusive() as first:
        with AnchorGuard(guard.settings).exclusive() as second:
            assert first and not second
    assert guard.should_trigger(ledger, 17)  # type: ignore[arg-type]  # re-armed once the anchor ran


def test_worker_command(tmp_path: Path) -> None:
    assert worker_argv(queues="hash", concurrency=2, pool="threads", beat=True, name="gpu@h", loglevel="INFO") == [
        "worker", "--queues=hash", "--pool=threads", "--loglevel=INFO", "--without-gossip", "--without-mingle",
        "--concurrency=2", "--hostname=gpu@h", "--beat"]
    runner = CliRunner()
    out = runner.invoke(worker, ["--help"])
    assert out.exit_code == 0 and "--beat" in out.output and "--queues" in out.output
    out = runner.invoke(worker, ["--queues", "ingest,gpu"], obj=None)
    assert out.exit_code == 2 and "choose from ingest, hash" in out.output


def test_importing_the_workers_reads_no_settings() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
    env["PROVENANCE_QUEUE"] = "not-a-queue"
    code = ("import workers.app, workers.queue, workers.tasks, workers.cli, workers.anchoring, workers.status\n"
            "print('imported', flush=True)\n"
            "workers.app.app  # `celery -A workers.app` reads this: now the settings are read (and refused)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    assert out.stdout == "imported\n", out.stderr
    assert out.returncode != 0 and "queue" in out.stderr
