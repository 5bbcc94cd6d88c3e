"""The fixed hold-out of a photo corpus: which photos no model may be trained on (issue 13).

A photo's split is a pure function of its path relative to the corpus root (``open/nips17-dev-flickr/0a1b.jpg``),
through SHA-256, so it never changes when photos are added, removed or reordered, needs no stored list, and every
tool that trains on the corpus can exclude the same photos (``is_held_out``). The split is by source photo: every
size, re-share and edit made from one photo lands where the photo does, so no variant of a held-out photo can leak
into training.

``HOLDOUT_SHARE`` (20 %) is held out, in two halves: ``calibration`` (thresholds and the confidence model are fitted
there) and ``test`` (reported, never fitted on). The rest is ``train``.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath

__all__ = ["CALIBRATION", "HOLDOUT_SHARE", "SALT", "SPLITS", "TEST", "TRAIN", "is_held_out", "order_key", "split_of"]

TRAIN, CALIBRATION, TEST = "train", "calibration", "test"
SPLITS = (TRAIN, CALIBRATION, TEST)
HOLDOUT_SHARE = 0.2
SALT = "provenance-holdout-v1"  # changing it re-deals every photo: never do so once a model was trained


def _unit(key: str) -> float:
    digest = hashlib.sha256(f"{SALT}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def _key(relative_path: str | PurePosixPath) -> str:
    key = PurePosixPath(str(relative_path).replace("\\", "/")).as_posix()
    if not key or key.startswith("/") or key == ".":
        raise ValueError(f"a split key is a photo's path relative to its corpus root, not {relative_path!r}")
    return key


def split_of(relative_path: str | PurePosixPath) -> str:
    """``train``, ``calibration`` or ``test`` for the photo at ``relative_path`` (relative to the corpus root)."""
    u = _unit(_key(relative_path))
    if u < HOLDOUT_SHARE / 2:
        return CALIBRATION
    if u < HOLDOUT_SHARE:
        return TEST
    return TRAIN


def is_held_out(relative_path: str | PurePosixPath) -> bool:
    """True for the photos no model may be trained on (calibration and test)."""
    return split_of(relative_path) != TRAIN


def order_key(relative_path: str | PurePosixPath) -> float:
    """A stable pseudo-random rank of a photo (independent of its split): ``--limit`` keeps the lowest ranks, so a
    smaller build is a subset of a larger one."""
    return _unit("order:" + _key(relative_path))
