"""Re-hash the stored images under another model into that model's channel version (issue 17, "ship and migrate").

A record is signed once and carries the code of the model it was made with, forever. When a new model ships, its
codes go to a channel of their own (``channels.channel_for``); this walks every live record indexed under the alg's
other channels, reads its image (through ``image_of``: the block store, by the record's image CID), hashes it with
the new model and adds the code to the new channel. Nothing signed is touched: not the record, not the log.

Resumable and idempotent: a record that already has an entry in the new channel (live or withdrawn) is skipped, so
an interrupted run, or a second run after records were ingested under the old model meanwhile, picks up where it
stopped. A record withdrawn while it was being re-hashed is withdrawn from the new channel too. A record whose image
cannot be read is reported and left for the next run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from provenance.index.channels import channel_for, channels_of
from provenance.index.errors import IndexEntryNotFoundError
from provenance.index.service import HashIndex
from provenance.logging import get_logger
from provenance.records import PerceptualHash

__all__ = ["RehashReport", "rehash_channel"]

log = get_logger(__name__)


class _CodeMaker(Protocol):
    alg: str

    def hash_image(self, data: bytes) -> PerceptualHash: ...


@dataclass
class RehashReport:
    alg: str
    model_id: str
    channel: str
    sources: list[str]
    rehashed: int = 0
    already: int = 0  # had an entry in the new channel before this run
    withdrawn_meanwhile: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (record CID, why)
    limited: bool = False  # stopped at ``limit`` (records may be left)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        """Every live record of the source channels has a code in the new channel (as of this run)."""
        return not self.failed and not self.limited


def rehash_channel(index: HashIndex, hasher: _CodeMaker, image_of: Callable[[str], bytes], *,
                   model_id: str | None = None, limit: int | None = None, page: int = 500,
                   progress: Callable[[RehashReport], None] | None = None) -> RehashReport:
    """Fill ``hasher``'s channel version with the codes of every live record indexed under the other versions of
    its alg. ``model_id``: the hasher's (asked of it when not given: a network hasher loads on that question)."""
    started = time.monotonic()
    model = model_id or str(getattr(hasher, "model_id"))
    target = channel_for(hasher.alg, model)
    sources = [c for c in channels_of(hasher.alg, index.catalog_channels()) if c != target]
    report = RehashReport(hasher.alg, model, target, sources)
    for source in sources:
        after = -1
        while limit is None or report.rehashed < limit:
            rows = index.live_records(source, after, page)
            if not rows:
                break
            after = rows[-1][0]
            for _, cid, publisher in rows:
                if limit is not None and report.rehashed >= limit:
                    break
                if index.entry(target, cid) is not None:  # done by an earlier run (or from another old version)
                    report.already += 1
                    continue
                _rehash_one(index, hasher, image_of, target, model, cid, publisher, report)
            if progress:
                progress(report)
    report.limited = limit is not None and report.rehashed >= limit  # there may be records left: run again
    report.seconds = time.monotonic() - started
    log.info("index.rehash", channel=target, model=model, sources=sources, rehashed=report.rehashed,
             already=report.already, failed=len(report.failed), seconds=round(report.seconds, 1))
    return report


def _rehash_one(index: HashIndex, hasher: _CodeMaker, image_of: Callable[[str], bytes], target: str, model: str,
                cid: str, publisher: str, report: RehashReport) -> None:
    try:
        data = image_of(cid)
        code = hasher.hash_image(data)
    except Exception as exc:  # noqa: BLE001 - a missing block or an undecodable image: report it, go on
        report.failed.append((cid, f"{type(exc).__name__}: {exc}"))
        log.warning("index.rehash_failed", record=cid, error=str(exc))
        return
    if code.model_id != model or code.alg != hasher.alg:
        raise ValueError(f"the hasher made a {code.alg} code of model {code.model_id}, expected {model}")
    index.add(target, cid, publisher, code.value)
    report.rehashed += 1
    old = [index.entry(c, cid) for c in report.sources]
    if any(e is not None and not e.live for e in old):
        try:  # withdrawn between the page read and the add: tombstone the new entry too
            index.withdraw(cid, publisher)
            report.withdrawn_meanwhile += 1
        except IndexEntryNotFoundError:
            pass
