"""The log side of C2SP ``tlog-witness``: ask every configured witness, in parallel, to cosign a checkpoint.

For each witness the client sends ``old`` = the size that witness last cosigned (as remembered by the log; 0 when
unknown) and the consistency proof from that size. A ``409`` with a ``text/x.tlog.size`` body teaches it the
witness's real size: it retries once from there (when that size is not above the checkpoint's). Every returned
cosignature is verified against the witness's configured key before it counts; lines by other keys are ignored.
Network failures and timeouts make that witness's answer ``unreachable``; nothing here raises for one witness.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import httpx

from provenance.errors import CheckpointError, ProofError, ProvenanceError
from provenance.logging import get_logger
from provenance.translog.checkpoint import Checkpoint, NoteSignature
from provenance.translog.cosignature import (
    add_cosignatures,
    parse_cosignature_lines,
    verify_cosignature,
)
from provenance.witness.endpoints import WitnessEndpoint
from provenance.witness.errors import MalformedRequestError
from provenance.witness.protocol import ADD_CHECKPOINT_PATH, SIZE_CONTENT_TYPE, encode_add_checkpoint, parse_size_body

__all__ = ["WitnessAnswer", "WitnessClient", "WitnessEndpoint", "request_cosignatures"]

log = get_logger(__name__)

AnswerStatus = Literal["cosigned", "refused", "unreachable", "invalid"]
ProofSource = Callable[[int], Sequence[bytes]]
"""Consistency proof from an old size to the checkpoint's size."""


@dataclass(frozen=True, slots=True)
class WitnessAnswer:
    """One witness's answer to one checkpoint.

    ``known_size`` is the size the witness is now known to have cosigned (the checkpoint's, after a cosignature; its
    own, after a 409), or None when nothing was learned.
    """

    endpoint: WitnessEndpoint
    status: AnswerStatus
    detail: str
    signatures: tuple[NoteSignature, ...] = ()
    timestamp: int | None = None
    known_size: int | None = None


class WitnessClient:
    """HTTP client of one witness (keeps its connection alive between checkpoints)."""

    def __init__(self, endpoint: WitnessEndpoint, *, timeout_s: float,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.endpoint = endpoint
        self._http = httpx.Client(base_url=endpoint.url.rstrip("/"), timeout=timeout_s, transport=transport)

    def close(self) -> None:
        self._http.close()

    def _post(self, old_size: int, proof: Sequence[bytes], note: str) -> httpx.Response:
        body = encode_add_checkpoint(old_size, proof, note)
        return self._http.post(ADD_CHECKPOINT_PATH, content=body, headers={"content-type": "text/plain"})

    def cosign(self, note: str, checkpoint: Checkpoint, old_size: int, proof_from: ProofSource) -> WitnessAnswer:
        """Ask for a cosignature of ``note`` (whose checkpoint is ``checkpoint``), starting from ``old_size``."""
        ep = self.endpoint
        learned: int | None = None
        old = old_size
        for attempt in (1, 2):
            if old > checkpoint.size:
                return WitnessAnswer(ep, "refused", f"witness has cosigned size {old}, larger than this checkpoint's "
                                     f"{checkpoint.size}: the log was rolled back or forked", known_size=learned)
            try:
                proof = list(proof_from(old)) if 0 < old < checkpoint.size else []
                resp = self._post(old, proof, note)
            except httpx.HTTPError as exc:
                return WitnessAnswer(ep, "unreachable", f"{type(exc).__name__}: {exc}", known_size=learned)
            except (ProofError, MalformedRequestError) as exc:
                return WitnessAnswer(ep, "refused", f"cannot build the request from size {old}: {exc}",
                                     known_size=learned)
            ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
            if resp.status_code == 409 and ctype == SIZE_CONTENT_TYPE:
                try:
                    size = parse_size_body(resp.content)
                except MalformedRequestError as exc:
                    return WitnessAnswer(ep, "invalid", f"409 with a bad size body: {exc}", known_size=learned)
                learned = size
                if size == old or attempt == 2:
                    return WitnessAnswer(ep, "refused", f"409: witness is at size {size} (we sent old {old})",
                                         known_size=learned)
                old = size
                continue
            if resp.status_code != 200:
                text = resp.text.strip().splitlines()[0][:300] if resp.text.strip() else ""
                return WitnessAnswer(ep, "refused", f"{resp.status_code}: {text}", known_size=learned)
            return self._verified(note, checkpoint, resp.content)
        raise AssertionError("unreachable")  # pragma: no cover

    def _verified(self, note: str, checkpoint: Checkpoint, body: bytes) -> WitnessAnswer:
        ep = self.endpoint
        try:
            lines = parse_cosignature_lines(checkpoint.body(), body)
            mine = [s for s in lines if s.key_name == ep.key.name and s.key_id == ep.key.key_id]
            timestamp = verify_cosignature(add_cosignatures(note, mine), ep.key)
        except CheckpointError as exc:  # CosignatureError included
            return WitnessAnswer(ep, "invalid", f"200 but its cosignature does not verify: {exc}")
        return WitnessAnswer(ep, "cosigned", "cosigned", signatures=tuple(mine), timestamp=timestamp,
                             known_size=checkpoint.size)


def request_cosignatures(
    clients: Sequence[WitnessClient],
    note: str,
    checkpoint: Checkpoint,
    *,
    known_sizes: Mapping[str, int],
    proof_from: ProofSource,
) -> list[WitnessAnswer]:
    """Ask every witness at once; one answer per client, in order. Never raises for a single witness's failure."""
    if not clients:
        return []

    def ask(client: WitnessClient) -> WitnessAnswer:
        try:
            return client.cosign(note, checkpoint, known_sizes.get(client.endpoint.label, 0), proof_from)
        except ProvenanceError as exc:  # e.g. the database behind proof_from: that witness is not asked
            return WitnessAnswer(client.endpoint, "unreachable", f"{type(exc).__name__}: {exc}")

    with ThreadPoolExecutor(max_workers=len(clients), thread_name_prefix="witness") as pool:
        answers = list(pool.map(ask, clients))
    for a in answers:
        log.info("witness.answer", witness=a.endpoint.label, url=a.endpoint.url, status=a.status, detail=a.detail,
                 size=checkpoint.size)
    return answers
