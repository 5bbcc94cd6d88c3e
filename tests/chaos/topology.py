"""The docker-compose topology as real processes on loopback, on private services the harness may break.

``provenance serve`` (``PROVENANCE_QUEUE=celery``) and ``provenance worker`` processes (``--pool solo``, the first
also runs the anchoring schedule, ``--beat``) share one data directory, one PostgreSQL, one Redis (broker on db 0,
status on db 1), one js-ipfs daemon and one ganache, all private (``tests/chaos/services.py``). When a tmpfs can be
mounted, the data directory is a small one, so the disk-full fault can fill it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.chaos.services import Ganache, IpfsDaemon, PrivatePostgres, PrivateRedis, SmallDisk
from tests.fixtures.services import ROOT, free_port

BIN = ROOT / ".venv" / "bin" / "provenance"
PUBLISHER = "chaos-news"


@dataclass(frozen=True)
class Timings:
    """Knobs that trade realism for run time. The CI defaults keep the suite to a few minutes; the benchmark run
    (``benchmarks/chaos_run.py``) uses the full lengths."""

    visibility_timeout_s: int = 8  # redelivery of a dead worker's task (production: an hour)
    retry_backoff_s: float = 0.5
    retry_backoff_max_s: float = 4.0
    max_retries: int = 40  # enough retries to outlast every outage here
    anchor_every_s: int = 15
    anchor_every_records: int = 6


class ManagedProcess:
    """One of our processes (API or worker) in its own process group, logging to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self._offset = 0

    def spawn(self) -> None:
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as fh:
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=fh, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self, *, whole: bool = False) -> str:
        """What the current run of the process logged (``whole``: every run's, the whole file)."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as fh:
            fh.seek(0 if whole else self._offset)
            return fh.read().decode("utf-8", "replace")

    def kill9(self) -> None:
        """SIGKILL the process group: no cleanup, no acknowledgement, no response."""
        if self.alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=20)

    def terminate(self, timeout_s: float = 20.0) -> None:
        if self.alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill9()


class Worker(ManagedProcess):
    def start(self, timeout_s: float = 180.0) -> None:
        self.spawn()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if " ready." in self.log():
                return
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.log()[-3000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout_s} s:\n{self.log()[-3000:]}")


class Api(ManagedProcess):
    def __init__(self, env: dict[str, str], log: Path, port: int) -> None:
        super().__init__("api", [str(BIN), "serve", "--host", "127.0.0.1", "--port", str(port)], env, log)
        self.base = f"http://127.0.0.1:{port}"

    def start(self, timeout_s: float = 180.0) -> float:
        """Start and wait until ``/healthz`` answers; returns the seconds it took."""
        t0 = time.monotonic()
        self.spawn()
        deadline = t0 + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"API exited:\n{self.log()[-3000:]}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"API not up after {timeout_s} s:\n{self.log()[-3000:]}")


@dataclass
class Topology:
    """Everything started; ``close()`` stops it all."""

    tmp: Path
    redis: PrivateRedis
    postgres: PrivatePostgres
    ipfs: IpfsDaemon
    chain: Ganache
    disk: SmallDisk | None
    env: dict[str, str]
    api: Api
    workers: list[Worker] = field(default_factory=list)
    api_key: str = ""
    timings: Timings = field(default_factory=Timings)

    @property
    def data_dir(self) -> Path:
        return Path(self.env["PROVENANCE_DATA_DIR"])

    def cli(self, *args: str, timeout_s: float = 300.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([str(BIN), *args], env=self.env, capture_output=True, text=True, timeout=timeout_s,
                             cwd=ROOT)
        if check and out.returncode != 0:
            raise AssertionError(f"provenance {' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
        return out

    def new_worker(self, *, beat: bool = False) -> Worker:
        n = len(self.workers)
        argv = [str(BIN), "worker", "--pool", "solo", "--queues", "ingest,hash",
                "--name", f"chaos{n}-{uuid.uuid4().hex[:6]}@%h"] + (["--beat"] if beat else [])
        worker = Worker(f"worker{n}", argv, self.env, self.tmp / f"worker{n}.log")
        self.workers.append(worker)
        return worker

    def close(self, *, keep_files: bool = False) -> None:
        """Stop everything; ``keep_files``: leave the logs and state in ``tmp`` (for a post-mortem)."""
        for w in self.workers:
            w.kill9()
        self.api.kill9()
        for stop in (self.ipfs.stop, self.chain.stop, self.redis.stop, self.postgres.close):
            try:
                stop()
            except Exception:  # noqa: BLE001 - tear everything down even if one part is already gone
                pass
        if self.disk is not None:
            self.disk.unmount()
        if not keep_files:
            shutil.rmtree(self.tmp, ignore_errors=True)


def start_topology(*, workers: int = 2, timings: Timings | None = None, disk_mb: int | None = 32,
                   extra_env: dict[str, str] | None = None) -> Topology:
    """Start every service and process; ``disk_mb``: the data directory is a tmpfs of that size when a tmpfs can
    be mounted here (else a plain directory, and ``topology.disk`` is None)."""
    timings = timings or Timings()
    tmp = Path(tempfile.mkdtemp(prefix="chaos-"))
    disk = None
    data_dir = tmp / "data"
    if disk_mb is not None and SmallDisk.why_not() is None:
        disk = SmallDisk(data_dir, disk_mb)
        disk.mount()
    started: list = []
    try:
        redis = PrivateRedis(tmp / "redis")
        redis.start()
        started.append(redis.stop)
        postgres = PrivatePostgres()
        started.append(postgres.close)
        postgres.start()
        ipfs = IpfsDaemon(tmp / "ipfs")
        ipfs.start()
        started.append(ipfs.stop)
        chain = Ganache(tmp / "evm")
        chain.start()
        started.append(chain.stop)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
        env.update({
            "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
            "PROVENANCE_DATA_DIR": str(data_dir),
            "PROVENANCE_DATABASE_URL": postgres.url,
            "PROVENANCE_BLOCKSTORE": "ipfs", "PROVENANCE_IPFS_API_URL": ipfs.url, "PROVENANCE_IPFS_TIMEOUT_S": "10",
            "PROVENANCE_CHAIN_RPC_URL": chain.url, "PROVENANCE_CHAIN_TIMEOUT_S": "5",
            "PROVENANCE_QUEUE": "celery", "PROVENANCE_BROKER_URL": redis.url(0),
            "PROVENANCE_RESULT_BACKEND": redis.url(1),
            "PROVENANCE_BROKER_VISIBILITY_TIMEOUT_S": str(timings.visibility_timeout_s),
            "PROVENANCE_INGEST_RETRY_BACKOFF_S": str(timings.retry_backoff_s),
            "PROVENANCE_INGEST_RETRY_BACKOFF_MAX_S": str(timings.retry_backoff_max_s),
            "PROVENANCE_INGEST_MAX_RETRIES": str(timings.max_retries),
            "PROVENANCE_ANCHOR_EVERY_S": str(timings.anchor_every_s),
            "PROVENANCE_ANCHOR_EVERY_RECORDS": str(timings.anchor_every_records),
            # the harness is one client hammering lookups: lift the per-client limits, keep the global ones
            "PROVENANCE_API_LOOKUP_RATE_PER_S": "1000", "PROVENANCE_API_LOOKUP_BURST": "1000",
            "PROVENANCE_API_HEAVY_PER_CLIENT": "2", "PROVENANCE_API_IMAGE_RATE_PER_S": "1000",
            "PROVENANCE_API_IMAGE_BURST": "1000",
            **(extra_env or {}),
        })
        topo = Topology(tmp, redis, postgres, ipfs, chain, disk, env,
                        Api(env, tmp / "api.log", free_port()), timings=timings)
        started.append(topo.close)
        topo.cli("chain", "deploy", "--if-missing")
        lines = topo.cli("publishers", "add", PUBLISHER).stdout.splitlines()
        topo.api_key = lines[next(i for i, ln in enumerate(lines) if ln.startswith("API key for")) + 1].strip()
        for i in range(workers):
            topo.new_worker(beat=i == 0).start()
        topo.api.start()
        return topo
    except BaseException:
        for stop in reversed(started):
            try:
                stop()
            except Exception:  # noqa: BLE001
                pass
        if disk is not None:
            disk.unmount()
        raise


