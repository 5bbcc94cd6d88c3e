"""Three real witnesses: ``provenance witness keygen`` and ``provenance witness serve`` subprocesses on free loopback
ports, shared by a module's tests.

Each test gets its own *log slot*: a data directory whose log signing key exists before the witnesses start (they
are configured with every slot's ``ORIGIN=VKEY``, as a witness operator is given a log's key), and its own origin,
so tests never see each other's witness state. A test that stops a witness restarts it (same key, same state
directory) before the next test runs.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from provenance.keyring import Keyring
from provenance.translog.checkpoint import encode_verifier_key
from provenance.translog.cosignature import WitnessKey, parse_witness_vkey
from tests.fixtures.services import free_port

BIN = Path(sys.executable).parent / "provenance"
LOG_KEY_NAME = "provenance-log"
SLOTS = 10


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
    env["PROVENANCE_LOG_LEVEL"] = "WARNING"
    return env


@dataclass
class LogSlot:
    origin: str
    data_dir: Path
    vkey: str

    @property
    def log_key(self):  # type: ignore[no-untyped-def]
        return Keyring(self.data_dir / "keys").service_key(LOG_KEY_NAME)


@dataclass
class WitnessProcess:
    name: str
    key_path: Path
    state_dir: Path
    port: int
    logs: list[str]
    vkey: str = ""
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def key(self) -> WitnessKey:
        return parse_witness_vkey(self.vkey)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        args = [str(BIN), "witness", "serve", "--key", str(self.key_path), "--state", str(self.state_dir),
                "--host", "127.0.0.1", "--port", str(self.port)]
        for log in self.logs:
            args += ["--log", log]
        log_file = open(self.state_dir.parent / f"{self.name}.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, env=clean_env())
        log_file.close()

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                log = (self.state_dir.parent / f"{self.name}.log").read_text(errors="replace")
                raise RuntimeError(f"witness {self.name} exited with {self.proc.returncode}:\n{log}")
            try:
                if httpx.get(self.url + "/", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"witness {self.name} not ready after {timeout_s} s")

    def kill(self) -> None:
        """SIGKILL: no chance to flush or clean up, like a power cut."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=30)
            self.proc = None


@dataclass
class WitnessNet:
    witnesses: list[WitnessProcess]
    slots: Iterator[LogSlot]

    @property
    def keys(self) -> list[WitnessKey]:
        return [w.key for w in self.witnesses]

    @property
    def env_value(self) -> str:
        """The PROVENANCE_WITNESSES value naming all three."""
        return ",".join(f"{w.url}={w.vkey}" for w in self.witnesses)

    def ensure_running(self) -> None:
        stopped = [w for w in self.witnesses if not w.running]
        for w in stopped:
            w.start()
        for w in stopped:
            w.wait_ready()


@pytest.fixture(scope="module")
def witness_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WitnessNet]:
    root = tmp_path_factory.mktemp("witness-net")
    slots = []
    for i in range(SLOTS):
        data = root / f"log{i}"
        key = Keyring(data / "keys").service_key(LOG_KEY_NAME)  # what the log operator hands its witnesses
        slots.append(LogSlot(f"log{i}.provenance.test/log", data, encode_verifier_key(LOG_KEY_NAME,
                                                                                     key.public_key())))
    logs = [f"{s.origin}={s.vkey}" for s in slots]
    witnesses = [WitnessProcess(f"w{i}", root / f"w{i}.key", root / f"w{i}-state", free_port(), logs)
                 for i in range(3)]
    keygens = [subprocess.Popen([str(BIN), "witness", "keygen", str(w.key_path), "--name", f"w{i}.news.test/witness"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
               for i, w in enumerate(witnesses)]
    for w, p in zip(witnesses, keygens):
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
        w.vkey = out.decode().strip()
        w.state_dir.mkdir()
    net = WitnessNet(witnesses, iter(slots))
    try:
        net.ensure_running()
        yield net
    finally:
        for w in witnesses:
            w.kill()


@pytest.fixture
def slot(witness_net: WitnessNet) -> LogSlot:
    witness_net.ensure_running()
    try:
        return next(witness_net.slots)
    except StopIteration:  # pragma: no cover - raise SLOTS when adding tests
        pytest.fail(f"more than {SLOTS} tests use the witness net: raise SLOTS in {__file__}")


_images = itertools.count()


def new_images(n: int) -> list[bytes]:
    """``n`` small PNGs never made before in this session."""
    import io

    from PIL import Image

    out = []
    for _ in range(n):
        i = next(_images)
        buf = io.BytesIO()
        Image.new("RGB", (48, 40), (i % 256, (i * 7) % 256, (i // 256) % 256)).save(buf, "PNG")
        out.append(buf.getvalue())
    return out
