"""Errors of the lookup image analysis (features, geometric verification, aligned comparison).

They subclass the package's one error tree (``provenance.errors``) so the CLI, HTTP API and workers map them like
any other ``ProvenanceError``. A failed geometric verification is *not* an error: it is a ``GeometryResult`` with
``passed=False`` and a reason, because "this candidate is a different scene" is an ordinary answer.
"""

from __future__ import annotations

from provenance.errors import InvalidInputError, ProvenanceError


class LookupAnalysisError(ProvenanceError):
    """Base of every error raised on purpose by ``provenance.lookup``'s image analysis."""


class AnalysisInputError(LookupAnalysisError, InvalidInputError):
    """An argument is malformed: an image that is not HxWx3 uint8 RGB, a homography that is not a finite invertible
    3x3 matrix, an unknown model name."""


class FeatureBlobError(LookupAnalysisError, InvalidInputError):
    """A serialised ``LocalFeatures`` blob is corrupt, truncated, or of a version this code does not read."""


class InsufficientOverlapError(LookupAnalysisError):
    """The registered query covers too little of the reference for an aligned comparison to mean anything."""
