"""Which records the Soft Binding Resolution API may call matches, and with what ``similarityScore``. Pure.

* ``byBinding`` has only a code: a record matches when its code is within the algorithm's calibrated cutoff
  (:mod:`provenance.softbinding.calibration`), scored by the same calibration (100 identical ... 50 at the target rate).
  An algorithm without a calibration (a model we did not calibrate) matches identical codes only.
* ``byContent`` has the image, so it runs the lookup (geometric verification, aligned comparison) and returns only
  what that verified: a *copy* of a record (the lookup's MATCH class: benign changes only) scores at least 50, the
  best calibrated score of its codes' distances above that; the *source of an edited copy* (ALTERED class) is
  returned too, at :data:`EDITED_SOURCE_SCORE` (below every copy), since it is the provenance of what was edited;
  another photo of the same scene is never a match. Nothing the verification did not pass is returned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from provenance.softbinding.calibration import Calibration

__all__ = ["EDITED_SOURCE_SCORE", "ScoredMatch", "binding_matches", "rank", "verified_sources"]

#: similarityScore of the registered source of an *altered* copy: related, but not this content.
EDITED_SOURCE_SCORE = 25
COPY_FLOOR = 50


@dataclass(frozen=True)
class ScoredMatch:
    record_cid: str
    score: int
    leaf_index: int | None = None  # ties: first registered first


def binding_matches(hits: Iterable[tuple[str, int]], calibration: Calibration | None) -> list[ScoredMatch]:
    """Index hits (record CID, Hamming distance) that are matches under ``calibration`` (None: exact only)."""
    best: dict[str, int] = {}
    for cid, distance in hits:
        d = int(distance)
        if calibration is None:
            score = 100 if d == 0 else 0
        else:
            score = calibration.similarity_score(d) if calibration.matches(d) else 0
        if score > 0:
            best[cid] = max(score, best.get(cid, 0))
    return [ScoredMatch(cid, score) for cid, score in best.items()]


def rank(matches: Iterable[ScoredMatch], k: int) -> list[ScoredMatch]:
    return sorted(matches, key=lambda m: (-m.score, m.leaf_index is None, m.leaf_index or 0, m.record_cid))[:k]


def verified_sources(verdict: Any, calibrations: Mapping[str, Calibration | None],
                     channel: str | None = None) -> list[ScoredMatch]:
    """The records a lookup verdict verified as copies of the query (and the source of an edited copy).

    ``verdict`` is what ``Lookup.lookup`` returns (its ``candidates`` and ``policy`` classify each verified
    candidate); an object with only ``to_obj()`` counts the candidates marked ``passed``. ``calibrations`` maps a
    record channel (``oscar-net``, ``phash``, ``global-id``) to its calibration; ``channel`` keeps only candidates
    that channel's index returned (the route's ``alg``)."""
    from provenance.lookup.verdict import ALTERED, MATCH, SAME_SCENE, classify

    obj = verdict.to_obj()
    if obj.get("verdict") not in (MATCH, ALTERED):
        return []
    candidates = getattr(verdict, "candidates", None)
    policy = getattr(verdict, "policy", None)
    out = []
    for cand, raw in zip(candidates or [None] * len(obj.get("candidates") or ()), obj.get("candidates") or ()):
        if not raw.get("passed"):
            continue
        if cand is not None and policy is not None:
            kind = classify(cand, policy)
        else:
            kind = ALTERED if obj["verdict"] == ALTERED and raw.get("record_cid") == obj.get("record_cid") else MATCH
        if kind == SAME_SCENE:
            continue
        if channel is not None and channel not in (raw.get("channels") or [channel]):
            continue
        if kind == ALTERED:
            score = EDITED_SOURCE_SCORE
        else:
            score = max(COPY_FLOOR, _best_score(raw, obj, calibrations))
        out.append(ScoredMatch(str(raw["record_cid"]), score, raw.get("leaf_index")))
    return out


def _best_score(raw: Mapping[str, Any], obj: Mapping[str, Any], calibrations: Mapping[str, Calibration | None]) -> int:
    distances: dict[str, int] = {}
    sensitive = next((alg for alg, v in (obj.get("hashes") or {}).items() if v == obj.get("hash")), None)
    if sensitive is not None and raw.get("distance") is not None:
        distances[sensitive] = int(raw["distance"])
    for alg, d in (raw.get("tolerant_distances") or {}).items():
        if d is not None:
            distances[alg] = int(d)
    best = 0
    for alg, d in distances.items():
        cal = calibrations.get(alg)
        if cal is not None and cal.matches(d):
            best = max(best, cal.similarity_score(d))
        elif cal is None and d == 0:
            best = 100
    return best
