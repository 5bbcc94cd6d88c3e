"""What the chaos harness drives through the API while it breaks things, and what it writes down.

* :class:`ImageSource`: an endless supply of small, distinct, real photos (crops of the Kodak set, 320x240 JPEG),
  so that every upload is new bytes and each ingest is quick.
* :class:`UploadStream`: threads that ``POST /v1/assets`` at a fixed pace and record every answer (or the lack of
  one): accepted (202 + task id), refused (status, error code, message), or no answer (connection refused/reset,
  timeout).
* :class:`LookupProbe`: a thread that keeps asking the read side (a record, its proof, a soft-binding match, a full
  lookup) and records every answer, so the checks can tell "kept answering" from "503 naming the part" from a
  500 or a hang.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.fixtures.services import ROOT

PHOTOS = ROOT.parent / "shared" / "data" / "photos" / "kodak24"
CLIENT_TIMEOUT_S = 60.0  # an answer slower than this is a hang


class ImageSource:
    """Distinct 320x240 JPEG crops of the 24 Kodak photos, in a fixed order (photo, then offset). ``start`` skips
    ahead, so that separate runs on one database never upload the same bytes."""

    def __init__(self, start: int = 0, size: tuple[int, int] = (320, 240)) -> None:
        from PIL import Image

        paths = sorted(PHOTOS.glob("kodim*.png"))
        if not paths:
            raise FileNotFoundError(f"no Kodak photos in {PHOTOS}")
        self._photos = [Image.open(p).convert("RGB") for p in paths]
        self._size = size
        self._lock = threading.Lock()
        self._gen = itertools.islice(self._crops(), start, None)

    def _crops(self) -> Iterator[bytes]:
        w, h = self._size
        for step in itertools.count():
            for photo in self._photos:  # a new photo each time: consecutive uploads are unlike each other
                x = (37 * step) % (photo.width - w)
                y = (23 * step) % (photo.height - h)
                buf = io.BytesIO()
                photo.crop((x, y, x + w, y + h)).save(buf, "JPEG", quality=90)
                yield buf.getvalue()

    def next(self) -> bytes:
        with self._lock:
            return next(self._gen)


@dataclass
class Upload:
    """One ``POST /v1/assets`` and what came back."""

    sha256: str
    started: float
    ended: float = 0.0
    status: int | None = None  # None: no HTTP answer at all
    task_id: str | None = None
    code: str | None = None  # error.code of a refusal
    message: str | None = None  # error.message of a refusal, or the transport error
    retry_after: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status == 202

    @property
    def answered(self) -> bool:
        return self.status is not None


def _error_of(resp: httpx.Response) -> tuple[str | None, str | None]:
    try:
        err = resp.json().get("error", {})
        return err.get("code"), err.get("message")
    except Exception:  # noqa: BLE001 - a non-JSON error body is itself a finding; keep its start
        return None, resp.text[:200]


class UploadStream:
    """``threads`` uploaders, each posting the next image every ``interval_s`` (or as fast as answers come)."""

    def __init__(self, base: str, api_key: str, images: ImageSource, *, threads: int = 2,
                 interval_s: float = 0.5) -> None:
        self.base, self.api_key, self.images = base, api_key, images
        self.threads, self.interval_s = threads, interval_s
        self.uploads: list[Upload] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> UploadStream:
        self._stop.clear()
        self._workers = [threading.Thread(target=self._run, daemon=True, name=f"uploader-{i}")
                         for i in range(self.threads)]
        for t in self._workers:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=CLIENT_TIMEOUT_S + 10)

    def outstanding(self) -> int:
        with self._lock:
            return sum(1 for u in self.uploads if not u.ended)

    def snapshot(self) -> list[Upload]:
        with self._lock:
            return list(self.uploads)

    def upload_one(self, client: httpx.Client, data: bytes) -> Upload:
        up = Upload(hashlib.sha256(data).hexdigest(), time.monotonic())
        with self._lock:
            self.uploads.append(up)
        try:
            resp = client.post(f"{self.base}/v1/assets", files={"file": ("chaos.jpg", data, "image/jpeg")},
                               headers={"Authorization": f"Bearer {self.api_key}"})
        except httpx.HTTPError as exc:
            up.message = f"{type(exc).__name__}: {exc}"
        else:
            up.status = resp.status_code
            if resp.status_code == 202:
                up.task_id = resp.json()["task_id"]
            else:
                up.code, up.message = _error_of(resp)
                up.retry_after = resp.headers.get("retry-after")
        up.ended = time.monotonic()
        return up

    def _run(self) -> None:
        with httpx.Client(timeout=CLIENT_TIMEOUT_S) as client:
            while not self._stop.is_set():
                t0 = time.monotonic()
                self.upload_one(client, self.images.next())
                self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - t0)))


@dataclass
class Probe:
    """One read-side request and its answer."""

    endpoint: str
    started: float
    latency_s: float
    status: int | None
    code: str | None = None
    message: str | None = None
    verdict: str | None = None  # a lookup's answer


@dataclass
class LookupTargets:
    """What the probe asks about: a registered record, one of its soft bindings, a re-shared copy of its image
    (a full lookup: *match*) and an edited copy (*altered*: the API writes a change map into the data directory)."""

    record_cid: str
    binding_alg: str
    binding_hex: str
    query_jpeg: bytes
    altered_jpeg: bytes


class LookupProbe:
    """Every ``interval_s``: ``GET /v1/records/{cid}``, its proof, ``GET /matches/byBinding``; every
    ``lookup_every``-th round also a full ``POST /v1/lookup`` of the re-shared copy, and every ``altered_every``-th
    one of the edited copy."""

    def __init__(self, base: str, targets: LookupTargets, *, interval_s: float = 0.5, lookup_every: int = 4,
                 altered_every: int | None = None) -> None:
        self.base, self.targets = base, targets
        self.interval_s, self.lookup_every, self.altered_every = interval_s, lookup_every, altered_every
        self.probes: list[Probe] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LookupProbe:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True, name="lookup-probe")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=CLIENT_TIMEOUT_S + 10)

    def snapshot(self) -> list[Probe]:
        with self._lock:
            return list(self.probes)

    def _ask(self, client: httpx.Client, endpoint: str, method: str, url: str, **kwargs: object) -> None:
        t0 = time.monotonic()
        try:
            resp = client.request(method, f"{self.base}{url}", **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            probe = Probe(endpoint, t0, time.monotonic() - t0, None, message=f"{type(exc).__name__}: {exc}")
        else:
            code = message = verdict = None
            if resp.status_code >= 400:
                code, message = _error_of(resp)
            elif endpoint.startswith("POST /v1/lookup"):
                verdict = resp.json().get("verdict")
            probe = Probe(endpoint, t0, time.monotonic() - t0, resp.status_code, code, message, verdict)
        with self._lock:
            self.probes.append(probe)

    def _run(self) -> None:
        t = self.targets
        with httpx.Client(timeout=CLIENT_TIMEOUT_S) as client:
            for n in itertools.count():
                if self._stop.is_set():
                    return
                t0 = time.monotonic()
                self._ask(client, "GET /v1/records/{cid}", "GET", f"/v1/records/{t.record_cid}")
                self._ask(client, "GET /v1/records/{cid}/proof", "GET", f"/v1/records/{t.record_cid}/proof")
                self._ask(client, "GET /matches/byBinding", "GET", "/matches/byBinding",
                          params={"alg": t.binding_alg, "value": t.binding_hex})
                if n % self.lookup_every == 0:
                    self._ask(client, "POST /v1/lookup (re-share)", "POST", "/v1/lookup",
                              files={"file": ("copy.jpg", t.query_jpeg, "image/jpeg")})
                if self.altered_every and n % self.altered_every == 0:
                    self._ask(client, "POST /v1/lookup (edited)", "POST", "/v1/lookup",
                              files={"file": ("edited.jpg", t.altered_jpeg, "image/jpeg")})
                self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - t0)))


def reshare(data: bytes) -> bytes:
    """A benign re-share: downscaled a little and re-encoded."""
    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("RGB")
    img = img.resize((int(img.width * 0.9), int(img.height * 0.9)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def edited(data: bytes, patch_from: bytes) -> bytes:
    """An edited copy: a quarter-size block of another photo pasted into the middle."""
    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("RGB")
    other = Image.open(io.BytesIO(patch_from)).convert("RGB")
    w, h = img.width // 4, img.height // 4
    img.paste(other.crop((0, 0, w, h)), (img.width // 2 - w // 2, img.height // 2 - h // 2))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return buf.getvalue()


@dataclass
class Window:
    """When a fault was in force (monotonic clock), for judging answers given meanwhile."""

    injected: float
    healed: float = field(default=float("inf"))

    def contains(self, t0: float, t1: float) -> bool:
        return t0 <= self.healed and t1 >= self.injected


def photos_available() -> str | None:
    return None if any(Path(PHOTOS).glob("kodim*.png")) else f"no Kodak photos in {PHOTOS}"
