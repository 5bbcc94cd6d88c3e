"""The audit's witness layer, pure: every stored checkpoint's cosignatures against the configured witness keys and
the quorum. Findings go to the audit report (anything with ``fail(check, subject, message)`` and ``warn(...)``).

* ``checkpoint.cosignature`` — a cosignature line by a configured witness that does not verify, or a line under a
  configured witness's name made with another key (a signed-note verifier would silently ignore it; an auditor
  names it, since it is exactly what a forged cosignature looks like);
* ``checkpoint.quorum`` — fewer valid cosignatures than the quorum. The latest checkpoint must always meet it;
  checkpoints older than the first cosigned one (published before witnesses were required) are reported as
  ``checkpoint.unwitnessed`` warnings instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from provenance.errors import CheckpointError
from provenance.translog.checkpoint import parse_note
from provenance.translog.cosignature import WitnessKey, check_cosignatures, parse_witness_vkey

__all__ = ["audit_cosignatures"]


class _Report(Protocol):
    def fail(self, check: str, subject: str, message: str) -> None: ...

    def warn(self, check: str, subject: str, message: str) -> None: ...


class _Checkpoint(Protocol):
    @property
    def tree_size(self) -> int: ...

    @property
    def note(self) -> str: ...


def audit_cosignatures(report: _Report, checkpoints: Sequence[_Checkpoint],
                       witnesses: Sequence[WitnessKey | str], quorum: int) -> None:
    """Check the cosignatures of ``checkpoints`` (oldest first; already verified as signed by the log)."""
    keys = [parse_witness_vkey(k) for k in witnesses]
    if not keys and quorum == 0:
        return
    names = {k.name: k for k in keys}
    valid_counts: list[int] = []
    for cp in checkpoints:
        subject = f"checkpoint {cp.tree_size}"
        try:
            _text, sigs = parse_note(cp.note)
            checks = check_cosignatures(cp.note, keys)
        except CheckpointError as exc:
            report.fail("checkpoint.cosignature", subject, f"cannot read the cosignatures: {exc}")
            valid_counts.append(0)
            continue
        for sig in sigs:
            known = names.get(sig.key_name)
            if known is not None and sig.key_id != known.key_id:
                report.fail("checkpoint.cosignature", subject,
                            f"a line under witness name {sig.key_name!r} was made with another key (key ID "
                            f"{sig.key_id.hex()}, configured {known.key_id.hex()})")
        for c in checks:
            if c.status == "invalid":
                report.fail("checkpoint.cosignature", subject, c.reason or f"invalid cosignature by {c.witness.label}")
        valid_counts.append(sum(c.status == "valid" for c in checks))
    first_witnessed = next((i for i, n in enumerate(valid_counts) if n > 0), len(valid_counts))
    for i, (cp, n) in enumerate(zip(checkpoints, valid_counts)):
        if n >= quorum:
            continue
        subject = f"checkpoint {cp.tree_size}"
        message = f"{n} valid witness cosignature(s) of {len(keys)} configured; the quorum is {quorum}"
        if i < first_witnessed and i != len(checkpoints) - 1:
            report.warn("checkpoint.unwitnessed", subject, message + " (published before witnesses were required)")
        else:
            report.fail("checkpoint.quorum", subject, message)
