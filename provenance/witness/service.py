"""A witness: the state machine of :mod:`.state`, its persisted state, and its key, behind one lock.

``add_checkpoint`` parses the request, decides, persists the new state (fsync'd) and only then cosigns, all under
one lock, so two concurrent requests cannot both pass the old-size check and roll the state back (the race the
``tlog-witness`` spec describes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from provenance.logging import get_logger
from provenance.translog.checkpoint import NoteSignature
from provenance.translog.cosignature import WitnessSigner
from provenance.witness.errors import ConsistencyProofError, RootConflictError
from provenance.witness.protocol import parse_add_checkpoint
from provenance.witness.state import LogHead, TrustedLog, evaluate
from provenance.witness.store import StateDir

__all__ = ["Witness"]

log = get_logger(__name__)


class Witness:
    def __init__(
        self,
        signer: WitnessSigner,
        logs: Mapping[str, TrustedLog],
        state: StateDir,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = signer
        self.logs = dict(logs)
        self.state = state
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def vkey(self) -> str:
        return self.signer.vkey()

    def heads(self) -> dict[str, LogHead]:
        with self._lock:
            return dict(self.state.heads)

    def add_checkpoint(self, body: bytes) -> list[NoteSignature]:
        """Handle one ``add-checkpoint`` body: the cosignature(s), or a :class:`WitnessRefusal` subclass."""
        req = parse_add_checkpoint(body)
        with self._lock:
            try:
                decision = evaluate(self.logs, self.state.heads, req)
            except (RootConflictError, ConsistencyProofError) as exc:
                # A correctly signed checkpoint that does not extend what we cosigned is evidence of misbehaviour.
                log.warning("witness.refused", reason=str(exc), checkpoint=req.note)
                raise
            if decision.changed:
                origin = decision.checkpoint.origin
                self.state.save({**self.state.heads, origin: decision.head}, {**self.state.notes, origin: req.note})
            timestamp = int(self._clock())
        sig = self.signer.cosign(decision.body, timestamp)
        log.info("witness.cosigned", origin=decision.checkpoint.origin, size=decision.checkpoint.size,
                 timestamp=timestamp)
        return [sig]

    def close(self) -> None:
        self.state.close()
