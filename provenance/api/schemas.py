"""Response and request models of the HTTP API (pydantic lives only here, at the edge), for validation and /docs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_image"])
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class TaskAccepted(BaseModel):
    task_id: str
    state: Literal["pending", "running", "succeeded", "failed"]
    status_url: str


class TaskStatusOut(BaseModel):
    task_id: str
    state: Literal["pending", "running", "succeeded", "failed"]
    step: str | None = None
    record_cid: str | None = None
    record_url: str | None = None
    duplicate: bool | None = None
    error: str | None = None


class Withdrawn(BaseModel):
    record_cid: str
    withdrawn: bool


# --- C2PA Soft Binding Resolution API (its schema names: c2pa.softBindingQuery / ...QueryResult / ...AlgList) -----
class SoftBindingQuery(BaseModel):
    alg: str = Field(description="Soft binding algorithm: one of GET /services/supportedAlgorithms.")
    value: str = Field(description="Base64 of the hash bytes (big-endian); our hex form is accepted too.")


class SoftBindingMatch(BaseModel):
    manifestId: str = Field(description="Our manifest id: the ledger record's CID.")
    similarityScore: int = Field(ge=0, le=100, description="round(100 * (1 - hamming distance / bits)).")
    endpoint: str | None = Field(None, description="Absent: fetch it from this service's /manifests.")


class SoftBindingQueryResult(BaseModel):
    matches: list[SoftBindingMatch]


class SoftBindingAlg(BaseModel):
    alg: str


class SoftBindingAlgList(BaseModel):
    watermarks: list[SoftBindingAlg]
    fingerprints: list[SoftBindingAlg]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "Malformed request (e.g. not a CID)",
        401: "Missing, unknown or revoked API key",
        403: "The key's publisher may not act on this resource",
        404: "Not found",
        413: "Upload over the size limit",
        415: "Not an image we can read (sniffed from the bytes)",
        422: "Corrupt image or invalid fields",
        429: "Rate limited (see Retry-After)",
        503: "A backing service (block store, chain, database) is unavailable",
    }.items()
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: ERROR_RESPONSES[c] for c in codes}
