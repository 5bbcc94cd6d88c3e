"""An accepted upload survives the server (issue 16, finding 6), on the embedded default: a real ``provenance serve``
is killed with SIGKILL while it ingests, then started again on the same data directory. Every upload that got 202
ends with exactly one record, and its task id reports succeeded.

The same restarted server then answers the other checks that need the real models: a 16-bit greyscale PNG is found
by its own bytes (finding 8), and its probes and Prometheus metrics answer and move (docs/operations.md)."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.services import ROOT, free_port

pytestmark = pytest.mark.slow


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def _serve(data_dir: Path, log: Path) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_") or k.startswith("PROVENANCE_TEST")}
    env.update({"PROVENANCE_DATA_DIR": str(data_dir), "PROVENANCE_ANCHOR_EVERY_S": "3600",
                "PROVENANCE_LOG_FORMAT": "json", "OMP_NUM_THREADS": "1"})
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "provenance.cli", "serve", "--port", str(port)], cwd=ROOT,
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            pytest.fail(f"provenance serve exited with {proc.returncode}:\n{server.tail()}")
        try:
            if httpx.get(server.url + "/healthz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"provenance serve did not answer /healthz within 90 s:\n{server.tail()}")
        time.sleep(0.2)


def _stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def _png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def _uploads(photos: Path) -> dict[str, bytes]:
    out = {}
    for n in (14, 15, 16):
        img = Image.open(photos / f"kodim{n:02d}.png").convert("RGB")
        img.thumbnail((384, 384))
        out[f"kodim{n}.png"] = _png(img)
    grey = Image.open(photos / "kodim19.png").convert("L")
    grey.thumbnail((384, 384))
    wide = np.asarray(grey).astype(np.uint16) * 257  # the full 16-bit range, as a scanner writes it
    out["gray16.png"] = _png(Image.fromarray(wide))
    assert Image.open(io.BytesIO(out["gray16.png"])).mode.startswith("I;16")
    return out


@dataclass
class Restarted:
    server: Server
    data_dir: Path
    uploads: dict[str, bytes]
    tasks: dict[str, str]  # name -> task id (from the 202s of the killed server)
    states_at_kill: dict[str, str]
    final: dict[str, dict[str, Any]]  # name -> the task as the restarted server reports it


@pytest.fixture(scope="module")
def restarted(tmp_path_factory: pytest.TempPathFactory, shared_photos: Path) -> Iterator[Restarted]:
    from provenance.api.keys import create_api_key
    from provenance.config import Settings
    from provenance.services import open_ledger

    data_dir = tmp_path_factory.mktemp("durable") / "data"
    ledger = open_ledger(Settings(data_dir=data_dir))
    ledger.add_publisher("alpha")
    key = create_api_key(ledger.engine, "alpha")
    ledger.close()
    uploads = _uploads(shared_photos / "kodak24")

    first = _serve(data_dir, data_dir.parent / "serve-1.log")
    try:
        tasks = {}
        for name, data in uploads.items():
            resp = httpx.post(first.url + "/v1/assets", headers={"Authorization": f"Bearer {key}"},
                              files={"file": (name, data, "image/png")}, data={"metadata": f'{{"title": "{name}"}}'},
                              timeout=60)
            assert resp.status_code == 202, resp.text
            tasks[name] = resp.json()["task_id"]
        # Kill it while it ingests: the first upload running (its models are still loading), the others waiting.
        deadline = time.monotonic() + 60
        while httpx.get(f"{first.url}/v1/tasks/{tasks['kodim14.png']}", timeout=10).json()["state"] != "running":
            assert time.monotonic() < deadline, first.tail()
            time.sleep(0.05)
        states = {n: httpx.get(f"{first.url}/v1/tasks/{t}", timeout=10).json()["state"] for n, t in tasks.items()}
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=10)
    finally:
        _stop(first)

    second = _serve(data_dir, data_dir.parent / "serve-2.log")
    try:
        final: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 300
        while len(final) < len(tasks):
            for name, task_id in tasks.items():
                resp = httpx.get(f"{second.url}/v1/tasks/{task_id}", timeout=10)
                assert resp.status_code == 200, f"task {task_id} unknown after the restart: {resp.text}"
                if resp.json()["state"] in ("succeeded", "failed"):
                    final[name] = resp.json()
            assert time.monotonic() < deadline, second.tail()
            time.sleep(0.3)
        yield Restarted(second, data_dir, uploads, tasks, states, final)
    finally:
        _stop(second)


def test_every_accepted_upload_ends_with_exactly_one_record(restarted: Restarted) -> None:
    from provenance.config import Settings
    from provenance.services import open_ledger

    assert restarted.states_at_kill["kodim14.png"] == "running"
    assert sum(s != "succeeded" for s in restarted.states_at_kill.values()) >= 3  # lost, without the fix
    assert {n: t["state"] for n, t in restarted.final.items()} == dict.fromkeys(restarted.uploads, "succeeded")
    ledger = open_ledger(Settings(data_dir=restarted.data_dir))
    try:
        with ledger.reader.connect() as conn:
            records = list(ledger.store.iter_records(conn))
    finally:
        ledger.close()
    by_image = {r.image_sha256: r.cid for r in records}
    assert len(records) == len(by_image) == len(restarted.uploads)  # exactly one record per upload
    for name, data in restarted.uploads.items():
        assert restarted.final[name]["record_cid"] == by_image[hashlib.sha256(data).hexdigest()]
    log = restarted.server.log.read_text()
    assert '"ingest.resumed"' in log
    audit = subprocess.run([sys.executable, "-m", "provenance.cli", "--data-dir", str(restarted.data_dir), "audit"],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_a_sixteen_bit_greyscale_png_is_found_by_its_own_bytes(restarted: Restarted) -> None:
    resp = httpx.post(restarted.server.url + "/v1/lookup", timeout=120,
                      files={"file": ("gray16.png", restarted.uploads["gray16.png"], "image/png")})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["verdict"] == "match", body["explanation"]
    assert body["record_cid"] == restarted.final["gray16.png"]["record_cid"]
    assert max(c["inliers"] for c in body["candidates"]) >= 100  # not a featureless white square


def _metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = httpx.get(url + "/metrics", timeout=30)
    assert resp.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


def test_the_restarted_server_is_ready_and_its_metrics_move(restarted: Restarted) -> None:
    url = restarted.server.url
    ready = httpx.get(url + "/readyz", timeout=30)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["index"]["ok"]
    before = _metrics(url)

    def get(samples: dict, name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    # The resumed ingests, counted by the process that ran them.
    assert get(before, "provenance_ingests_total", outcome="appended") + \
        get(before, "provenance_ingests_total", outcome="duplicate") == len(restarted.uploads)
    for channel in ("oscar-net", "phash", "global-id"):
        assert get(before, "provenance_index_entries", channel=channel) == len(restarted.uploads), channel
    assert get(before, "provenance_log_size") == 1 + len(restarted.uploads)  # alpha's registration + the records
    assert get(before, "provenance_ingest_queue_depth", state="pending") == 0

    img = Image.open(io.BytesIO(restarted.uploads["kodim15.png"])).convert("RGB")
    out = io.BytesIO()
    img.resize((img.width * 3 // 4, img.height * 3 // 4)).save(out, "JPEG", quality=85)
    found = httpx.post(url + "/v1/lookup", files={"file": ("q.jpg", out.getvalue(), "image/jpeg")}, timeout=120)
    assert found.json()["verdict"] == "match"
    after = _metrics(url)
    assert get(after, "provenance_lookups_total", verdict="match") == \
        get(before, "provenance_lookups_total", verdict="match") + 1
    assert get(after, "provenance_lookup_duration_seconds_count", verdict="match") == \
        get(before, "provenance_lookup_duration_seconds_count", verdict="match") + 1
