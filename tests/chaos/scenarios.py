"""The faults, and the judgement after each one.

Every scenario runs the same way (:func:`run_fault`): uploads and lookups flow; at the right moment (``moment``: a
step mid-chain, an upload mid-request) the fault is injected; it lasts ``outage_s``; it is healed; the flow goes on
a little; then, with every service back, the harness waits until every accepted upload has finished and judges
(:func:`judge`):

* **lost**: an accepted upload (202) without exactly one record (task not succeeded, no record, no log leaf, or not
  in the hash index);
* **duplicated**: an image with more than one record, a record with more than one log leaf, or a task whose
  record is not the image's record;
* every refusal was a clear one at the time: a 503 whose message names the part that is down (or a 429/503 for
  capacity, with Retry-After), never a 500, another 4xx (a valid upload refused as if it were bad, e.g. a 401 because
  the key store was unreachable) or a hang; no answer at all only while the API itself was dead;
* every lookup answered (200, a correct verdict) or answered 503 naming the part, except while the API was dead;
* ``provenance audit`` passes.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from tests.chaos.load import (CLIENT_TIMEOUT_S, ImageSource, LookupProbe, LookupTargets, Probe, Upload,
                              UploadStream, Window, edited, reshare)
from tests.chaos.topology import Topology

#: A 503 must say which part is down: one of these words in its message.
PART_WORDS = re.compile(r"database|block ?store|ipfs|ingest queue|broker|result backend|redis|chain|disk|"
                        r"no space", re.I)


#: Refusals for capacity, not outages (with Retry-After): the queue's pending slots, rate limits, heavy-work slots.
CAPACITY_CODES = ("queue_full", "rate_limited", "busy")
FINAL = ("succeeded", "failed", "unknown")  # "unknown": GET /v1/tasks/{id} answers 404
EXPECTED_VERDICT = {"POST /v1/lookup (re-share)": "match", "POST /v1/lookup (edited)": "altered"}


@dataclass
class FaultOutcome:
    fault: str
    in_flight: int  # uploads being sent or accepted-and-unfinished when the fault struck
    accepted: int
    refused: int
    no_answer: int
    lost: int
    duplicated: int
    recover_s: float | None  # healed -> every accepted upload finished (and the fault's own condition)
    lookups: dict[str, int]  # "200", "503", "no answer", ... over the whole run
    refusals: dict[str, int] = field(default_factory=dict)  # "503 blockstore_unavailable": count
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    facts: dict[str, float] = field(default_factory=dict)  # what a scenario measured besides the table

    @property
    def ok(self) -> bool:
        return not self.problems and self.lost == 0 and self.duplicated == 0

    def row(self) -> str:
        rec = "n/a" if self.recover_s is None else f"{self.recover_s:.1f} s"
        looks = ", ".join(f"{k}: {v}" for k, v in sorted(self.lookups.items()))
        return (f"| {self.fault} | {self.in_flight} | {self.accepted} | {self.refused} | {self.no_answer} | "
                f"{self.lost} | {self.duplicated} | {rec} | {looks} | {'pass' if self.ok else 'FAIL'} |")


TABLE_HEADER = ("| fault | uploads in flight | accepted (202) | refused (4xx/503) | no answer | lost | duplicated | "
                "time to recover | lookup answers | result |\n|---|---|---|---|---|---|---|---|---|---|")


def table(outcomes: list[FaultOutcome]) -> str:
    return "\n".join([TABLE_HEADER, *(o.row() for o in outcomes)])


# --- the run ---------------------------------------------------------------------------------------------------
@dataclass
class Harness:
    topo: Topology
    images: ImageSource
    targets: LookupTargets
    upload_threads: int = 2
    upload_interval_s: float = 1.2
    probe_interval_s: float = 0.5
    settle_timeout_s: float = 240.0


def seed(topo: Topology, images: ImageSource) -> LookupTargets:
    """Ingest one image and wait for it: the record the lookup probe asks about."""
    data = images.next()
    with httpx.Client(timeout=CLIENT_TIMEOUT_S) as client:
        up = UploadStream(topo.api.base, topo.api_key, images).upload_one(client, data)
        assert up.accepted, f"seed upload refused: {up.status} {up.message}"
        status = wait_task(client, topo.api.base, up.task_id, timeout_s=300)  # type: ignore[arg-type]
        assert status["state"] == "succeeded", status
        cid = status["record_cid"]
        record = json.loads(client.get(f"{topo.api.base}/v1/records/{cid}").content)
    hashes = record.get("hashes") or record["attestation"]["hashes"]
    binding = next(h for h in hashes if h["alg"] == "phash")
    return LookupTargets(cid, binding["alg"], binding["value"], reshare(data), edited(data, images.next()))


def wait_task(client: httpx.Client, base: str, task_id: str, *, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            resp = client.get(f"{base}/v1/tasks/{task_id}")
            if resp.status_code == 200:
                status = resp.json()
                if status["state"] in ("succeeded", "failed"):
                    return status
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return status


def task_states(base: str, task_ids: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    with httpx.Client(timeout=10) as client:
        for task_id in task_ids:
            try:
                resp = client.get(f"{base}/v1/tasks/{task_id}")
                if resp.status_code == 404:  # the queue forgot it: final, and lost
                    out[task_id] = {"state": "unknown", "error": resp.json().get("error")}
                else:
                    out[task_id] = resp.json() if resp.status_code == 200 else {"state": f"http {resp.status_code}"}
            except httpx.HTTPError as exc:
                out[task_id] = {"state": f"no answer ({type(exc).__name__})"}
    return out


def wait_api_ready(topo: Topology, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{topo.api.base}/readyz", timeout=5).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def run_fault(h: Harness, name: str, inject: Callable[[], None], heal: Callable[[], None], *,
              outage_s: float, before_s: float = 1.0, after_s: float = 2.0, api_down: bool = False,
              moment: Callable[[UploadStream], object] | None = None, recovered: Callable[[], bool] | None = None,
              altered_every: int | None = None, notes: list[str] | None = None) -> FaultOutcome:
    """Flow, wait for ``moment()`` (the right time to strike: by default while an upload's request is open; a
    scenario may ask for another, e.g. a step mid-chain), inject, hold ``outage_s``,
    heal, flow, settle, judge. ``api_down``: the fault is the API's own death, so requests without an answer during
    it are expected. ``recovered``: an extra condition of recovery (e.g. the log anchored again)."""
    topo = h.topo
    stream = UploadStream(topo.api.base, topo.api_key, h.images, threads=h.upload_threads,
                          interval_s=h.upload_interval_s).start()
    probe = LookupProbe(topo.api.base, h.targets, interval_s=h.probe_interval_s, altered_every=altered_every).start()
    try:
        time.sleep(before_s)
        (moment or upload_open)(stream)
        in_flight = _in_flight(topo, stream)
        window = Window(time.monotonic())
        inject()
        time.sleep(outage_s)
        heal()
        window.healed = time.monotonic()
        recovery: dict[str, float] = {}
        watcher = threading.Thread(target=_watch_recovery, args=(h, stream, window, recovered, recovery),
                                   daemon=True)
        watcher.start()
        time.sleep(after_s)
    finally:
        stream.stop()
        probe.stop()
    watcher.join(timeout=max(0.0, window.healed + h.settle_timeout_s - time.monotonic()))
    uploads, probes = stream.snapshot(), probe.snapshot()
    states = _settle(h, uploads)
    outcome = judge(topo, name, uploads, probes, states, window, api_down=api_down)
    outcome.in_flight = in_flight
    recover_s = recovery.get("seconds")
    outcome.recover_s = recover_s
    outcome.notes.extend(notes or [])
    if recover_s is None:
        outcome.problems.append(f"not recovered within {h.settle_timeout_s:.0f} s of the heal")
    return outcome


def upload_open(stream: UploadStream) -> bool:
    """The default moment to strike: while an upload's request is open (so the fault always meets one)."""
    return wait_until(lambda: stream.outstanding() > 0, 20, poll_s=0.005)


def _in_flight(topo: Topology, stream: UploadStream) -> int:
    """Uploads whose request is open, plus accepted ones whose ingest has not finished, at the fault. The task
    states are read from Redis (db 1, the result backend) directly: the API may be what just died."""
    import redis

    sending = stream.outstanding()
    accepted = [u.task_id for u in stream.snapshot() if u.accepted]
    unfinished = 0
    try:
        client = redis.Redis.from_url(topo.redis.url(1), socket_timeout=2, socket_connect_timeout=2)
        for task_id in accepted:
            raw = client.get(f"celery-task-meta-{task_id}")
            state = json.loads(raw).get("status", "") if raw else ""
            if state not in ("INGEST_SUCCEEDED", "INGEST_FAILED"):
                unfinished += 1
        client.close()
    except Exception:  # noqa: BLE001 - Redis may be the part that is down: count what the stream knows
        unfinished = len(accepted)
    return sending + unfinished


def _watch_recovery(h: Harness, stream: UploadStream, window: Window, recovered: Callable[[], bool] | None,
                    out: dict[str, float]) -> None:
    """From the heal, beside the flow that goes on: the moment the API is ready (``/readyz`` 200), every upload sent
    before the heal has had its answer and, if accepted, its ingest has finished, an upload sent after the heal has
    gone all the way through (accepted and ingested: the service works end to end again), and ``recovered()``
    holds. Its seconds after the heal go to ``out["seconds"]``; nothing when not within ``settle_timeout_s``."""
    topo = h.topo
    deadline = window.healed + h.settle_timeout_s
    states: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        uploads = stream.snapshot()
        before = [u for u in uploads if u.started <= window.healed]
        if all(u.ended for u in before) and _ready(topo):
            accepted = [u.task_id for u in before if u.accepted]
            after = [u.task_id for u in uploads if u.started > window.healed and u.accepted]
            pending = [t for t in accepted + after if states.get(t, {}).get("state") not in FINAL]  # type: ignore[arg-type]
            states.update(task_states(topo.api.base, pending))  # type: ignore[arg-type]
            if (all(states[t].get("state") in FINAL for t in accepted)  # type: ignore[index]
                    and any(states[t].get("state") == "succeeded" for t in after)  # type: ignore[index]
                    and (recovered is None or recovered())):
                out["seconds"] = time.monotonic() - window.healed
                return
        time.sleep(0.25)


def _ready(topo: Topology) -> bool:
    try:
        return httpx.get(f"{topo.api.base}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _settle(h: Harness, uploads: list[Upload]) -> dict[str, dict[str, Any]]:
    """After the flow: wait (at most ``settle_timeout_s``) until the API is ready and every accepted upload has
    finished; returns the final task states (unfinished ones as they are)."""
    topo = h.topo
    deadline = time.monotonic() + h.settle_timeout_s
    accepted = [u.task_id for u in uploads if u.accepted]
    states: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        if wait_api_ready(topo, timeout_s=max(1.0, deadline - time.monotonic())):
            pending = [t for t in accepted if states.get(t, {}).get("state") not in FINAL]
            states.update(task_states(topo.api.base, pending))  # type: ignore[arg-type]
            if all(states[t].get("state") in FINAL for t in accepted):  # type: ignore[index]
                return states
        time.sleep(0.5)
    states.update(task_states(topo.api.base, accepted))  # type: ignore[arg-type]
    return states


# --- the judgement -----------------------------------------------------------------------------------------------
def ledger_rows(topo: Topology) -> tuple[dict[str, list[str]], Counter[str], dict[str, int]]:
    """From PostgreSQL: image sha256 -> record CIDs, record CID -> log leaves, record CID -> live index entries."""
    engine = create_engine(topo.postgres.url)
    try:
        with engine.connect() as conn:
            by_image: dict[str, list[str]] = {}
            for sha, cid in conn.execute(text("SELECT image_sha256, cid FROM records")):
                by_image.setdefault(sha, []).append(cid)
            leaves = Counter(cid for (cid,) in conn.execute(text("SELECT record_cid FROM log_leaves")))
            indexed = dict(conn.execute(text(
                "SELECT record_cid, count(*) FROM index_entries WHERE withdrawn_at IS NULL GROUP BY record_cid"
            )).all())
    finally:
        engine.dispose()
    return by_image, leaves, indexed


def judge(topo: Topology, name: str, uploads: list[Upload], probes: list[Probe],
          states: dict[str, dict[str, Any]], window: Window, *, api_down: bool) -> FaultOutcome:
    problems: list[str] = []
    by_image, leaves, indexed = ledger_rows(topo)
    lost = duplicated = 0
    lost_as: Counter[str] = Counter()  # how the lost ones ended: task state, records found
    for up in uploads:
        cids = by_image.get(up.sha256, [])
        if len(cids) > 1:
            duplicated += 1
            problems.append(f"image {up.sha256[:12]} has {len(cids)} records: {cids}")
        for cid in cids:
            if leaves[cid] != 1:
                duplicated += leaves[cid] > 1
                problems.append(f"record {cid} has {leaves[cid]} log leaves")
        if not up.accepted:
            continue
        st = states.get(up.task_id or "", {})
        if st.get("state") != "succeeded" or len(cids) != 1 or not indexed.get(cids[0]):
            lost += 1
            lost_as[f"task {st.get('state')}, {len(cids)} record(s)"] += 1
            problems.append(f"accepted upload {up.task_id} lost: task {st}, records {cids}, "
                            f"indexed {[indexed.get(c, 0) for c in cids]}")
        elif st.get("record_cid") != cids[0]:
            duplicated += 1
            problems.append(f"task {up.task_id} names record {st.get('record_cid')}, the image's record is {cids[0]}")
    refused = [u for u in uploads if u.answered and not u.accepted]
    for u in refused:
        capacity = u.code in CAPACITY_CODES and u.retry_after is not None
        if u.status not in (429, 503) or not u.message:
            problems.append(f"upload refused without a clear error: {u.status} {u.code} {u.message}")
        elif not capacity and not PART_WORDS.search(u.message):
            problems.append(f"{u.status} that names no part: {u.code} {u.message}")
    unanswered = [u for u in uploads if not u.answered]
    for u in unanswered:
        if not (api_down and window.contains(u.started, u.ended)) or "Timeout" in (u.message or ""):
            problems.append(f"upload without an answer: {u.message}")
    looks: Counter[str] = Counter()
    for p in probes:
        looks[str(p.status) if p.status is not None else "no answer"] += 1
        if p.status is None:
            if not (api_down and window.contains(p.started, p.started + p.latency_s)) or "Timeout" in (p.message or ""):
                problems.append(f"{p.endpoint}: no answer ({p.message})")
        elif p.status in (429, 503) and p.code in CAPACITY_CODES:
            continue  # capacity (the heavy-work slots), not an outage: clear on its own
        elif p.status == 503:
            if not PART_WORDS.search(p.message or ""):
                problems.append(f"{p.endpoint}: 503 that names no part: {p.code} {p.message}")
        elif p.status != 200:
            problems.append(f"{p.endpoint}: {p.status} {p.code} {p.message}")
        elif p.verdict is not None and p.verdict != EXPECTED_VERDICT[p.endpoint]:
            problems.append(f"{p.endpoint}: verdict {p.verdict}, expected {EXPECTED_VERDICT[p.endpoint]}")
    t_audit = time.monotonic()
    audit = topo.cli("audit", "--json", check=False, timeout_s=600)
    audit_s = time.monotonic() - t_audit
    if audit.returncode != 0:
        errs = "\n".join(ln for ln in audit.stderr.splitlines() if "HTTP Request" not in ln)
        try:
            failures = [f"{f['check']} {f['subject']}: {f['message']}" for f in json.loads(audit.stdout)["failures"]]
        except (ValueError, KeyError, TypeError):
            failures = [audit.stdout[-1500:]]
        problems.append(f"audit failed ({audit.returncode}): {failures[:5]} ({len(failures)} failures) {errs[-1500:]}")
    reasons = Counter(f"{u.status} {u.code}" for u in refused)
    notes = [f"audit took {audit_s:.1f} s"]
    if lost_as:
        notes.append("lost: " + ", ".join(f"{k} x{v}" for k, v in sorted(lost_as.items())))
    return FaultOutcome(name, 0, sum(u.accepted for u in uploads), len(refused), len(unanswered), lost, duplicated,
                        None, dict(looks), dict(reasons), problems, notes)


# --- the faults --------------------------------------------------------------------------------------------------
def wait_until(predicate: Callable[[], object], timeout_s: float, poll_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return False


def ensure_healthy(h: Harness) -> None:
    """Before a scenario: every service up, two workers, the API ready (a failed scenario must not fail the next)."""
    topo = h.topo
    if not topo.redis.alive():
        topo.redis.start()
    if not topo.postgres.alive():
        topo.postgres.start()
    topo.ipfs.start()  # both scripts answer at once when their daemon already runs
    topo.chain.start()
    if topo.disk is not None:
        topo.disk.free()
    for w in topo.workers:
        if not w.alive():
            w.start()
    if not topo.api.alive():
        topo.api.start()
    if not wait_api_ready(topo, 120):
        raise AssertionError(f"API not ready before the scenario: {httpx.get(f'{topo.api.base}/readyz').text}")


def worker_kill(h: Harness, *, outage_s: float = 2.0, **flow: float) -> FaultOutcome:
    topo = h.topo
    victim = topo.workers[-1]  # not the one that runs the anchoring schedule

    def mid_chain(_: UploadStream) -> bool:  # a step is running on the victim: its log has a task received and not yet finished
        return wait_until(lambda: victim.log().count("received") > victim.log().count("succeeded in"), 30)

    before = sum(w.log(whole=True).count("ingest.redelivered") for w in topo.workers)
    outcome = run_fault(h, "kill -9 a worker", victim.kill9, victim.start, outage_s=outage_s, moment=mid_chain,
                        **flow)
    redelivered = sum(w.log(whole=True).count("ingest.redelivered") for w in topo.workers) - before
    outcome.facts["redelivered"] = redelivered
    outcome.notes.append(f"{redelivered} step(s) the dead worker held were redelivered after the broker's visibility "
                         f"timeout ({topo.timings.visibility_timeout_s} s here; production default 3600 s)")
    return outcome


def redis_restart(h: Harness, *, outage_s: float = 3.0, **flow: float) -> FaultOutcome:
    r = h.topo.redis
    return run_fault(h, "restart Redis (broker + task status)", r.stop, r.start, outage_s=outage_s, **flow)


def redis_restart_without_persistence(h: Harness, *, outage_s: float = 3.0, **flow: float) -> FaultOutcome:
    """Not a test of the service: what running Redis *without* persistence costs (docs/chaos.md). Redis comes back
    empty (no append-only file), so the queued steps and the task statuses it held are gone. Run it last: Redis
    stays without persistence afterwards."""
    r = h.topo.redis
    return run_fault(h, "restart Redis without persistence (not the supported set-up)", r.stop,
                     lambda: r.start(persistent=False), outage_s=outage_s, **flow)


def postgres_restart(h: Harness, *, outage_s: float = 3.0, **flow: float) -> FaultOutcome:
    pg = h.topo.postgres
    return run_fault(h, "restart PostgreSQL (crash: immediate stop)", lambda: pg.stop("immediate"), pg.start,
                     outage_s=outage_s, **flow)


def ipfs_outage(h: Harness, *, outage_s: float = 10.0, **flow: float) -> FaultOutcome:
    ipfs = h.topo.ipfs
    return run_fault(h, f"stop the IPFS daemon for {outage_s:.0f} s", ipfs.stop, ipfs.start, outage_s=outage_s,
                     **flow)


def anchored_tree_size(topo: Topology) -> tuple[int, int]:
    """(log size, largest anchored checkpoint's tree size) from PostgreSQL."""
    engine = create_engine(topo.postgres.url)
    try:
        with engine.connect() as conn:
            size = conn.execute(text("SELECT count(*) FROM log_leaves")).scalar_one()
            anchored = conn.execute(text(
                "SELECT coalesce(max(tree_size), 0) FROM checkpoints WHERE anchor_tx IS NOT NULL")).scalar_one()
    finally:
        engine.dispose()
    return int(size), int(anchored)


def evm_outage(h: Harness, *, outage_s: float = 10.0, **flow: float) -> FaultOutcome:
    """The node stops; records keep coming, so anchors are due (every ``anchor_every_records`` records, and the
    periodic one) and fail while it is away; recovered once a checkpoint covering the log is anchored."""
    topo = h.topo
    chain = topo.chain
    at_heal: dict[str, int] = {}

    def heal() -> None:
        # Hold the node down until an anchoring attempt has met it: under load the records appended during
        # ``outage_s`` may not reach ``anchor_every_records``, nor the outage cross the periodic anchor.
        held = time.monotonic()
        wait_until(lambda: count("Retry in") > retries_before, topo.timings.anchor_every_s + 15, poll_s=0.25)
        at_heal["held_on_ms"] = int(1000 * (time.monotonic() - held))
        chain.start()
        at_heal["size"] = anchored_tree_size(topo)[0]

    def anchored_again() -> bool:
        return anchored_tree_size(topo)[1] >= at_heal["size"]

    def count(what: str) -> int:
        return sum(ln.count(what) for w in topo.workers for ln in w.log(whole=True).splitlines()
                   if "anchor" in ln)

    retries_before, done_before = count("Retry in"), count("anchor.done")
    outcome = run_fault(h, f"stop the EVM node for {outage_s:.0f} s across anchoring", chain.stop, heal,
                        outage_s=outage_s, recovered=anchored_again, **flow)
    outcome.facts["anchor_retries"] = count("Retry in") - retries_before
    outcome.facts["anchors_done"] = count("anchor.done") - done_before
    outcome.notes.append(f"anchoring attempts that met the stopped node and were retried: "
                         f"{outcome.facts['anchor_retries']:.0f}; anchors made: {outcome.facts['anchors_done']:.0f}; "
                         f"(the node stayed down {at_heal.get('held_on_ms', 0) / 1000:.1f} s past the outage until one "
                         "did); recovered = a checkpoint covering the log at the heal is anchored")
    return outcome


def api_kill(h: Harness, **flow: float) -> FaultOutcome:
    """kill -9 the API while uploads are being sent; the heal is starting it again."""
    topo = h.topo
    stream_holder: dict[str, float] = {}

    def heal() -> None:
        stream_holder["restart_s"] = topo.api.start()

    outcome = run_fault(h, "kill -9 the API during uploads", topo.api.kill9, heal, outage_s=0.5, api_down=True,
                        **flow)
    outcome.notes.append(f"API restart took {stream_holder.get('restart_s', float('nan')):.1f} s "
                         "(requests sent meanwhile got connection refused)")
    return outcome


def disk_full(h: Harness, *, outage_s: float = 10.0, **flow: float) -> FaultOutcome:
    """The data directory's disk (a tmpfs) is filled until writes fail; while it is full a worker also restarts
    (so it must open its hash index with no room to save it). The heal frees the space."""
    topo = h.topo
    disk = topo.disk
    assert disk is not None
    victim = topo.workers[-1]
    taken: dict[str, int] = {}

    def inject() -> None:
        taken["bytes"] = disk.fill()
        victim.terminate()
        victim.start()

    outcome = run_fault(h, "fill the data directory's disk", inject, disk.free, outage_s=outage_s, altered_every=2,
                        **flow)
    outcome.notes.append(f"filled {taken.get('bytes', 0) / 2**20:.0f} MiB of a {disk.size_mb} MiB tmpfs "
                         "until ENOSPC; a worker restarted while it was full")
    return outcome
