"""Who registered an image first: the earlier record of *another* publisher that a new upload duplicates.

Two ways to be the same image, cheapest first:

* ``sha256``: the very same bytes (one indexed query);
* ``near-duplicate``: other bytes that a lookup would call a *match* (geometric verification and the aligned
  comparison find the same picture, unchanged). Only when another publisher's record lies within the hash
  thresholds of the upload's own codes (one index query per channel) does the full lookup run, so an upload with
  nothing near costs no more than before.

Among several earlier records the one first appended to the log (lowest leaf index) is named. What happens then is
the operator's policy (``PROVENANCE_INGEST_DUPLICATE_POLICY``): ``flag`` ingests the upload and reports the earlier
record in the task result; ``refuse`` refuses it with :class:`~provenance.errors.DuplicateImageError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from provenance.errors import DuplicateImageError
from provenance.ledger import Ledger
from provenance.logging import get_logger
from provenance.records import PerceptualHash

__all__ = ["DuplicatePolicy", "PriorRegistration", "earliest_near_duplicate", "earliest_same_image", "refuse"]

log = get_logger(__name__)

DuplicatePolicy = Literal["flag", "refuse"]
#: pHash distance within which an earlier record is worth verifying (the classic near-duplicate radius).
PHASH_NEAR_BITS = 10


@dataclass(frozen=True)
class PriorRegistration:
    """The earlier record: ``match`` says how it was found (``sha256`` or ``near-duplicate``)."""

    record_cid: str
    publisher_id: str
    leaf_index: int
    match: str

    def to_obj(self) -> dict[str, Any]:
        return {"earlier_record_cid": self.record_cid, "earlier_publisher": self.publisher_id,
                "earlier_leaf_index": self.leaf_index, "earlier_match": self.match}

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> PriorRegistration | None:
        if not obj.get("earlier_record_cid"):
            return None
        return cls(obj["earlier_record_cid"], obj["earlier_publisher"], int(obj["earlier_leaf_index"]),
                   obj["earlier_match"])


def earliest_same_image(ledger: Ledger, data: bytes, *, other_than: str) -> PriorRegistration | None:
    """The first record of these exact bytes by any publisher but ``other_than``."""
    with ledger.reader.connect() as conn:
        rec = ledger.store.earliest_by_image(conn, hashlib.sha256(data).hexdigest(), other_than=other_than)
    return None if rec is None else PriorRegistration(rec.cid, rec.publisher_id, rec.leaf_index, "sha256")


def _near(lookup: Any, hashes: Iterable[PerceptualHash]) -> set[str]:
    """Records whose code lies within the threshold of the upload's on the sensitive channel or pHash."""
    from provenance.index.errors import EmptyIndexError

    codes = {h.alg: h.value for h in hashes}
    models = {h.alg: h.model_id for h in hashes}
    sensitive = lookup.channels.sensitive
    radius: dict[str, int] = {}
    if sensitive in codes:
        radius[sensitive] = lookup.policy.hash_threshold
    if "phash" in codes and "phash" != sensitive:
        radius["phash"] = PHASH_NEAR_BITS
    near: set[str] = set()
    for alg, bits in radius.items():
        try:
            hits = lookup.search(alg, codes[alg], model_id=models[alg])
        except EmptyIndexError:
            continue
        near.update(cid for cid, distance in hits if int(distance) <= bits)
    return near


def earliest_near_duplicate(lookup: Any, data: bytes, hashes: Iterable[PerceptualHash], *,
                            other_than: str) -> PriorRegistration | None:
    """The first record of another publisher that a lookup of ``data`` verifies as a *match* (see the module
    docstring for why this is cheap when nothing is near). ``lookup`` is a ``provenance.lookup.service.Lookup``."""
    hashes = tuple(hashes)
    if lookup.channels.sensitive not in {h.alg for h in hashes}:
        return None  # no code of the channel that decides "match" (e.g. a pHash-only setup): nothing to verify
    near = _near(lookup, hashes)
    if not near:
        return None
    ledger = lookup.ledger
    with ledger.reader.connect() as conn:
        stored = {cid: ledger.store.get(conn, cid) for cid in near}
    if all(rec is None or rec.publisher_id == other_than for rec in stored.values()):
        return None
    from provenance.lookup.verdict import is_altered

    verdict = lookup.lookup(data, name="upload", change_map_dir=None)
    matches: list[tuple[int, str, str]] = []
    with ledger.reader.connect() as conn:
        for c in verdict.candidates:
            if not c.passed or is_altered(c, verdict.policy):
                continue
            rec = ledger.store.get(conn, c.record_cid)
            if rec is not None and rec.publisher_id != other_than:
                matches.append((rec.leaf_index, rec.cid, rec.publisher_id))
    if not matches:
        return None
    leaf, cid, publisher = min(matches)
    return PriorRegistration(cid, publisher, leaf, "near-duplicate")


def refuse(prior: PriorRegistration, publisher: str) -> DuplicateImageError:
    """The error of the ``refuse`` policy, naming the earlier record."""
    how = "the same bytes" if prior.match == "sha256" else "a near-duplicate (verified as a match)"
    return DuplicateImageError(
        f"{how} of this image was registered earlier by publisher {prior.publisher_id!r} as record "
        f"{prior.record_cid} (log leaf {prior.leaf_index}); {publisher!r} may not register it again "
        "(PROVENANCE_INGEST_DUPLICATE_POLICY=refuse)", record_cid=prior.record_cid, publisher_id=prior.publisher_id)
