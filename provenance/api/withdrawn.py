"""What withdrawal means at the HTTP edge (docs/withdrawal.md): the signed record stays in the log and auditable
(``GET /v1/records/{cid}`` and its proof keep answering), but the service stops serving the image and what is read
from it: ``GET /v1/records/{cid}/image`` (original and thumbnails) and ``GET /manifests/{id}`` answer 410 Gone."""

from __future__ import annotations

from typing import Any

from provenance.api.errors import ApiError

__all__ = ["refuse_if_withdrawn", "withdrawal_of"]


def withdrawal_of(service: Any, record_cid: str) -> str | None:
    """How the record was withdrawn, or None while it is live: the publisher's withdrawal event in the log, or
    (withdrawn before such events existed) its entries tombstoned in the lookup index's catalog."""
    event = service.ledger.withdrawal(record_cid)
    if event is not None:
        return f"by the publisher's withdrawal event {event.cid} (log leaf {event.leaf_index})"
    when = service.lookup.withdrawn_at(record_cid)
    if when is not None:
        return f"by its publisher at {when.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    return None


def refuse_if_withdrawn(service: Any, record_cid: str, what: str) -> None:
    """410 Gone for ``what`` (the image, the manifest) of a withdrawn record."""
    how = withdrawal_of(service, record_cid)
    if how is not None:
        raise ApiError(410, "withdrawn", f"record {record_cid} was withdrawn {how}: {what} is no longer served. The "
                       f"signed record stays in the log, auditable: GET /v1/records/{record_cid} and its /proof",
                       headers={"Cache-Control": "no-store"})
