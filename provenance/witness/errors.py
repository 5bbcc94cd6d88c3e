"""Errors of the witness, under :class:`provenance.errors.WitnessError`.

Each refusal names one way a submitted checkpoint can be wrong; the witness's HTTP layer
(:mod:`provenance.witness.app`) maps each class to the C2SP ``tlog-witness`` status code in one table.
"""

from __future__ import annotations

from provenance.errors import WitnessError

__all__ = [
    "ConsistencyProofError",
    "LogSignatureError",
    "MalformedRequestError",
    "OldSizeMismatchError",
    "RootConflictError",
    "UnknownLogError",
    "WitnessRefusal",
    "WitnessStateError",
]


class WitnessRefusal(WitnessError):
    """The witness will not cosign this checkpoint (its state is unchanged)."""


class MalformedRequestError(WitnessRefusal):
    """The add-checkpoint body is not well formed, or its old size is larger than the checkpoint's size."""


class UnknownLogError(WitnessRefusal):
    """The checkpoint's origin is not a log this witness was configured for."""


class LogSignatureError(WitnessRefusal):
    """No signature on the checkpoint verifies under a key the witness trusts for its origin."""


class OldSizeMismatchError(WitnessRefusal):
    """The client's old size is not the size this witness last cosigned; ``current_size`` is that size."""

    def __init__(self, message: str, *, current_size: int) -> None:
        super().__init__(message)
        self.current_size = current_size


class RootConflictError(WitnessRefusal):
    """Same size as the last cosigned checkpoint but a different root: the log forked."""


class ConsistencyProofError(WitnessRefusal):
    """The consistency proof from the last cosigned checkpoint does not verify."""


class WitnessStateError(WitnessError):
    """The witness's persisted state cannot be read, written or locked."""
