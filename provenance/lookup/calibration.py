"""The verdict calibration shipped with the code: thresholds and the confidence model, and how they were made.

``verdict_calibration.json`` (beside this module) is written by ``benchmarks/calibrate_verdicts.py`` from a
calibration split of labelled pairs (``make-dataset --recipe world --split calibration``, measured with
``benchmarks/bench_verdicts.py``); it is data, like the hash's weights, and its ``made_by`` says from what and with
which command. The lookup reads it once; the hash thresholds still come with the hash's weights.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from provenance.errors import ConfigError
from provenance.lookup.confidence import ConfidenceModel
from provenance.lookup.verdict import Policy

__all__ = ["CALIBRATION_FILE", "FORMAT", "VerdictCalibration", "load_calibration"]

CALIBRATION_FILE = Path(__file__).with_name("verdict_calibration.json")
FORMAT = "provenance-verdict-calibration/1"
#: Policy fields the file may set (the hash's own thresholds and the identity gate come with their weights).
CALIBRATED_FIELDS = ("change_threshold", "change_thresholds", "scene_off_plane", "scene_min_inlier_ratio",
                     "scene_changed", "scene_max_density", "scene_min_inliers", "clone_min_matches", "clone_min_gap",
                     "region_threshold", "peak_threshold", "peak_min_contrast", "chroma_threshold",
                     "scene_beyond_seam", "scene_beyond_texture", "scene_beyond_min_edge", "match_floor")


@dataclass(frozen=True)
class VerdictCalibration:
    """``hash_altered``: per sensitive-hash model id, the distance beyond which the hash alone says "edited" once
    geometry holds (fitted on benign copies by ``benchmarks/calibrate_hash_altered.py``); a model without an entry
    uses its own match threshold."""

    thresholds: Mapping[str, Any]
    confidence: ConfidenceModel | None
    made_by: Mapping[str, Any] = field(default_factory=dict)
    hash_altered: Mapping[str, int] = field(default_factory=dict)

    def policy(self, *, hash_threshold: int, hash_altered: int, identity_gate: int | None) -> Policy:
        return Policy(hash_threshold=hash_threshold, hash_altered=hash_altered, identity_gate=identity_gate,
                      **{k: v for k, v in self.thresholds.items()})  # type: ignore[arg-type]

    def hash_altered_for(self, model_id: str, threshold: int) -> int:
        """The hash-alone altered distance for the sensitive model ``model_id`` (its ``threshold`` if unfitted)."""
        return int(self.hash_altered.get(model_id, threshold))


def _ladder(value: Any) -> tuple[tuple[int, float], ...]:
    """[[side, value], ...] as (int, float) pairs (``Policy``'s by-resolution steps)."""
    return tuple((int(side), float(v)) for side, v in value)


def _thresholds(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ValueError("'thresholds' must be an object")
    unknown = sorted(set(raw) - set(CALIBRATED_FIELDS))
    if unknown:
        raise ValueError(f"unknown thresholds {unknown}; the file may set {list(CALIBRATED_FIELDS)}")
    types = {f.name: f.type for f in fields(Policy)}
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "change_thresholds":
            pairs = _ladder(value)
            if list(pairs) != sorted(pairs) or any(side < 1 or t <= 0 for side, t in pairs):
                raise ValueError("change_thresholds must be ascending [side, threshold] pairs, both positive")
            out[name] = pairs
        elif name == "match_floor":
            floor = _ladder(value)
            if [side for side, _ in floor] != sorted({side for side, _ in floor}) or \
                    any(side < 1 or not 0.0 < share < 1.0 for side, share in floor):
                raise ValueError("match_floor must be [side, share] pairs with distinct ascending sides >= 1 and "
                                 "shares in (0, 1)")
            out[name] = floor
        elif value is None and "None" in str(types[name]):
            out[name] = None
        elif "int" in str(types[name]):
            out[name] = int(value)
        else:
            out[name] = float(value)
    return out


def _hash_altered(raw: Any) -> dict[str, int]:
    if not isinstance(raw, Mapping):
        raise ValueError("'hash_altered' must be an object of model id -> distance")
    out = {}
    for model, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 4096:
            raise ValueError(f"hash_altered for {model!r} must be a positive whole number of bits, not {value!r}")
        out[str(model)] = value
    return out


def parse_calibration(obj: Any, source: str = "calibration") -> VerdictCalibration:
    """Validate a calibration object; raise ``ConfigError`` naming what is wrong (nothing is half-applied)."""
    try:
        if not isinstance(obj, Mapping) or obj.get("format") != FORMAT:
            raise ValueError(f"not a verdict calibration (format must be {FORMAT!r})")
        confidence = obj.get("confidence")
        return VerdictCalibration(_thresholds(obj.get("thresholds", {})),
                                  None if confidence is None else ConfidenceModel.from_obj(confidence),
                                  dict(obj.get("made_by") or {}), _hash_altered(obj.get("hash_altered", {})))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


@lru_cache(maxsize=4)
def load_calibration(path: Path | None = None) -> VerdictCalibration:
    """The calibration at ``path`` (default: the shipped file), read and checked once per process."""
    path = path or CALIBRATION_FILE
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"verdict calibration {path} is unreadable: {exc}") from None
    return parse_calibration(obj, str(path))
