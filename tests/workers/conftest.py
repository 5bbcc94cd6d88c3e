"""Worker fixtures: a real Redis broker and real ``celery worker`` subprocesses (never eager mode).

``PROVENANCE_TEST_REDIS_URL`` names the Redis server (default ``redis://127.0.0.1:6379``). Each stack of tests
claims a Redis database number of its own that nobody is using (an empty one, marked with a claim key) and flushes
it when done, so parallel sessions and other users of the server are left alone. Workers get a temp data dir and
only the ``PROVENANCE_*`` variables the test gives them. No Redis: skip, or fail under
``PROVENANCE_TEST_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from provenance.config import Settings
from tests.fixtures.services import ROOT, unavailable

CLAIM_KEY = "provenance-test:claim"
# ``celery -A workers.app worker``, run by this interpreter (the venv's celery, whatever PATH says).
_CELERY = "import sys; from celery.__main__ import main; sys.argv[0] = 'celery'; main()"


def redis_base_url() -> str:
    return os.environ.get("PROVENANCE_TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")


@dataclass
class RedisDb:
    url: str
    number: int

    def client(self):  # type: ignore[no-untyped-def]
        import redis

        return redis.Redis.from_url(self.url)


ClaimDb = Callable[[], RedisDb]
MakeStack = Callable[..., "Stack"]


@pytest.fixture(scope="session")
def claim_redis_db() -> Iterator[ClaimDb]:
    """A factory: each call claims an empty Redis database; all are flushed at the end of the session."""
    import redis

    base = redis_base_url()
    try:
        redis.Redis.from_url(f"{base}/0", socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        unavailable(f"no Redis at {base} ({exc}); start one: redis-server --daemonize yes --port 6379 --save ''")
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    claimed: list[RedisDb] = []

    def claim() -> RedisDb:
        for number in range(15, 0, -1):
            client = redis.Redis.from_url(f"{base}/{number}")
            if client.set(CLAIM_KEY, token, nx=True, ex=3600):
                if client.dbsize() == 1:
                    db = RedisDb(f"{base}/{number}", number)
                    claimed.append(db)
                    return db
                client.delete(CLAIM_KEY)  # someone else's data lives here
        unavailable(f"no free Redis database number on {base} (all of 1-15 hold data)")
        raise AssertionError("unreachable")

    yield claim
    for db in claimed:
        release(db, token)


def release(db: RedisDb, token: str | None = None) -> None:
    client = db.client()
    owner = client.get(CLAIM_KEY)
    if owner is not None and (token is None or owner.decode() == token):
        client.flushdb()


class WorkerProcess:
    """``celery -A workers.app worker --pool solo`` in its own process group, logging to a file."""

    def __init__(self, env: dict[str, str], log_path: Path, *, queues: str = "ingest,hash") -> None:
        self.env = env
        self.log_path = log_path
        self.queues = queues
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> WorkerProcess:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        cmd = [sys.executable, "-c", _CELERY, "-A", "workers.app", "worker", "--pool", "solo", "--without-gossip",
               "--without-mingle", "--without-heartbeat", "-Q", self.queues, "-l", "INFO",
               "-n", f"test-{uuid.uuid4().hex[:8]}@%h"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if " ready." in self.log(offset):
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log(offset)[-3000:]}")
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"worker not ready after {timeout_s} s:\n{self.log(offset)[-3000:]}")

    def log(self, offset: int = 0) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", "replace")

    def kill(self) -> None:
        """SIGKILL the whole worker (its process group): no cleanup, no acknowledgements."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """At the end of a test: its broker database and data dir are thrown away, so no need to wait for a
        warm shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


def worker_env(settings_env: dict[str, str]) -> dict[str, str]:
    """This environment without any PROVENANCE_ setting of the caller's, plus the given ones (and one torch thread:
    the machine's cores are shared)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_") or k.startswith("PROVENANCE_TEST_")}
    env.update({"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    env.update(settings_env)
    return env


@dataclass
class Stack:
    """A data dir, a Redis database, the settings both the test and its workers use, and the workers."""

    data_dir: Path
    redis: RedisDb
    env: dict[str, str]
    workers: list[WorkerProcess]
    tmp: Path

    @property
    def settings(self) -> Settings:
        kwargs = {k[len("PROVENANCE_"):].lower(): v for k, v in self.env.items()
                  if k.startswith("PROVENANCE_") and not k.startswith("PROVENANCE_TEST_")}
        return Settings(**kwargs)

    def worker(self, **env: str) -> WorkerProcess:
        w = WorkerProcess(worker_env({**self.env, **env}), self.tmp / f"worker-{len(self.workers)}.log")
        self.workers.append(w)
        return w

    def close(self) -> None:
        for w in self.workers:
            w.stop()


@pytest.fixture
def make_stack(claim_redis_db: ClaimDb, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeStack]:
    stacks: list[Stack] = []

    def _make(**env: str) -> Stack:
        stack = new_stack(claim_redis_db, tmp_path_factory, **env)
        stacks.append(stack)
        return stack

    yield _make
    for stack in stacks:
        stack.close()
        release(stack.redis)


def new_stack(claim_redis_db: ClaimDb, tmp_path_factory: pytest.TempPathFactory, **env: str) -> Stack:
    db = claim_redis_db()
    tmp = tmp_path_factory.mktemp("worker-stack")
    base = {
        "PROVENANCE_DATA_DIR": str(tmp / "data"),
        "PROVENANCE_QUEUE": "celery",
        "PROVENANCE_BROKER_URL": db.url,
        "PROVENANCE_RESULT_BACKEND": db.url,
        "PROVENANCE_INGEST_RETRY_BACKOFF_S": "0.5",
        "PROVENANCE_INGEST_RETRY_BACKOFF_MAX_S": "4",
    }
    return Stack(tmp / "data", db, {**base, **env}, [], tmp)


def wait_for(predicate: Callable[[], object], *, timeout_s: float, what: str, poll_s: float = 0.1) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``target``; ``stop()`` makes the port refuse connections, ``start()`` heals.
    A real outage of a real service, seen from the worker: connection refused."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port = port
        self.target = target
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        self._server = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        threading.Thread(target=self._accept, args=(self._server,), daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        with self._lock:
            for c in self._conns:
                c.close()
            self._conns.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # redis-py 8 deprecates SETEX, which Celery 5.7's Redis result backend calls on every status write.
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning"))
