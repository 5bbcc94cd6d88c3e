"""Uploading images with their signed statements to a provenance server, and waiting for their records."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from provenance.client.statement import build_statement
from provenance.errors import InvalidInputError, ProvenanceError
from provenance.metadata import PublisherMetadata


class ClientError(ProvenanceError):
    """The server refused a request or could not be reached; the message says which and why."""


@dataclass(frozen=True)
class SubmitResult:
    path: str
    record_cid: str | None = None
    duplicate: bool = False
    error: str | None = None

    def to_obj(self) -> dict[str, Any]:
        if self.error is not None:
            return {"path": self.path, "error": self.error}
        return {"path": self.path, "record_cid": self.record_cid, "duplicate": self.duplicate}


def _error_text(resp: httpx.Response) -> str:
    try:
        err = resp.json().get("error", {})
        return f"HTTP {resp.status_code} {err.get('code', '')}: {err.get('message', resp.text[:200])}"
    except (ValueError, AttributeError):
        return f"HTTP {resp.status_code}: {resp.text[:200]}"


class Submitter:
    """One server, one publisher key. ``http`` may be injected (tests pass a client bound to an app)."""

    def __init__(self, server: str, api_key: str, key: Ed25519PrivateKey, *, http: httpx.Client | None = None,
                 timeout_s: float = 60.0) -> None:
        self.key = key
        self.http = http or httpx.Client(base_url=server.rstrip("/"), timeout=timeout_s)
        self.http.headers["Authorization"] = f"Bearer {api_key}"
        self._publisher: str | None = None

    def whoami(self) -> dict[str, Any]:
        try:
            resp = self.http.get("/v1/publisher")
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach {self.http.base_url}: {exc}") from None
        if resp.status_code != 200:
            raise ClientError(f"who am I? {_error_text(resp)}")
        return dict(resp.json())

    @property
    def publisher(self) -> str:
        if self._publisher is None:
            self._publisher = str(self.whoami()["publisher"])
        return self._publisher

    def upload(self, path: Path, metadata: PublisherMetadata) -> str:
        """Sign and upload one image; the task id, or ClientError naming why the server refused it."""
        data = path.read_bytes()
        statement = build_statement(data, publisher=self.publisher, key=self.key, metadata=metadata,
                                    source=str(path))
        files = {"file": (path.name, data, "application/octet-stream")}
        form = {"statement": statement.to_bytes().decode("utf-8"),
                "metadata": json.dumps(metadata.to_obj())}
        try:
            resp = self.http.post("/v1/assets", files=files, data=form)
        except httpx.HTTPError as exc:
            raise ClientError(f"upload of {path} failed: {exc}") from None
        if resp.status_code != 202:
            raise ClientError(_error_text(resp))
        return str(resp.json()["task_id"])

    def wait(self, task_id: str, *, timeout_s: float = 600.0, poll_s: float = 0.25) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                resp = self.http.get(f"/v1/tasks/{task_id}")
            except httpx.HTTPError as exc:
                raise ClientError(f"task {task_id}: {exc}") from None
            if resp.status_code != 200:
                raise ClientError(f"task {task_id}: {_error_text(resp)}")
            status = resp.json()
            if status.get("state") in ("succeeded", "failed"):
                return dict(status)
            if time.monotonic() > deadline:
                raise ClientError(f"task {task_id} still {status.get('state')} after {timeout_s:.0f} s")
            time.sleep(poll_s)

    def submit(self, paths: list[Path], metadata: PublisherMetadata, *,
               progress: Callable[[int], None] | None = None) -> list[SubmitResult]:
        """Upload every file (the upload is the progress unit), then wait for every task."""
        pending: list[tuple[Path, str]] = []
        results: dict[Path, SubmitResult] = {}
        for path in paths:
            try:
                pending.append((path, self.upload(path, metadata)))
            except (ClientError, InvalidInputError, OSError) as exc:
                results[path] = SubmitResult(str(path), error=str(exc))
            if progress:
                progress(1)
        for path, task_id in pending:
            try:
                status = self.wait(task_id)
            except ClientError as exc:
                results[path] = SubmitResult(str(path), error=str(exc))
                continue
            if status["state"] == "succeeded" and status.get("record_cid"):
                results[path] = SubmitResult(str(path), record_cid=status["record_cid"],
                                             duplicate=bool(status.get("duplicate")))
            else:
                results[path] = SubmitResult(str(path), error=f"ingest failed: {status.get('error')}")
        return [results[p] for p in paths]

    def post_event(self, event_json: bytes) -> dict[str, Any]:
        """Send a signed key event (rotation, revocation, withdrawal) to ``POST /v1/key-events``."""
        try:
            resp = self.http.post("/v1/key-events", content=event_json,
                                  headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            raise ClientError(f"key event: {exc}") from None
        if resp.status_code not in (200, 201):
            raise ClientError(_error_text(resp))
        return dict(resp.json())

    def close(self) -> None:
        self.http.close()
