"""Object-level descriptions of an edit: "person added near (412, 180)".

The aligned comparison says *where* an altered copy differs from its original; the hasher's object detector (the one
OSCAR-Net builds its scene graph from) says *what* is there. Given the objects detected in the query and in the
original, the verified homography (query -> original pixels) and the changed regions (original pixels):

1. query boxes are carried into the original's frame: the four corners through the homography, their bounding box,
   clipped to the image (a mirrored match is already folded into the homography);
2. objects are paired across the two images, greedily by IoU: same label and IoU >= ``PAIR_IOU``;
3. only what a changed region touches is reported (overlap >= ``TOUCH`` of the smaller of the two boxes), so a
   detector that flickers on an unchanged part of the picture cannot invent an edit:

   * a query object with no partner: **added**;
   * an original object with no partner: **removed**;
   * a query object and an original object of different labels at the same place (IoU >= ``PAIR_IOU``): **replaced**;
   * a pair that a changed region covers: **changed** (the same kind of object, different content: a swapped face,
     a recoloured car).

A detection counts as a claim only at ``claim_score`` or above, but anything the detector saw at all (the lower
score the caller detected with) still counts as a partner: an object the detector saw faintly in the original is
not "added" because it scored higher in the copy. Regions that no object explains stay plain regions.

Pure functions over plain values (no images), so every rule is tested without a detector.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from provenance.hashing import DetectedObject
from provenance.lookup.verdict import ObjectChange, Region

__all__ = ["CLAIM_SCORE", "PAIR_IOU", "TOUCH", "describe_object_changes", "project_box"]

PAIR_IOU = 0.3
TOUCH = 0.5
CLAIM_SCORE = 0.3

Box = tuple[float, float, float, float]  # x1, y1, x2, y2


def project_box(box: Box, homography: np.ndarray, size: tuple[int, int]) -> Box | None:
    """The bounding box, clipped to ``size`` (width, height), of ``box``'s corners mapped by ``homography``; None
    when a corner goes to infinity or nothing of it lands in the image."""
    x1, y1, x2, y2 = box
    corners = np.array([[x1, y1, 1.0], [x2, y1, 1.0], [x2, y2, 1.0], [x1, y2, 1.0]]).T
    mapped = np.asarray(homography, dtype=np.float64) @ corners
    if np.any(mapped[2] <= 1e-9):
        return None
    xs, ys = mapped[0] / mapped[2], mapped[1] / mapped[2]
    w, h = size
    out = (max(0.0, float(xs.min())), max(0.0, float(ys.min())), min(float(w), float(xs.max())),
           min(float(h), float(ys.max())))
    return out if out[2] - out[0] >= 1 and out[3] - out[1] >= 1 else None


def _area(b: Box) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def _intersection(a: Box, b: Box) -> float:
    return _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def _iou(a: Box, b: Box) -> float:
    inter = _intersection(a, b)
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def _touches(box: Box, regions: Sequence[Box]) -> bool:
    for r in regions:
        smaller = min(_area(box), _area(r))
        if smaller > 0 and _intersection(box, r) / smaller >= TOUCH:
            return True
    return False


def _region_box(r: Region) -> Box:
    return (float(r.x), float(r.y), float(r.x + r.width), float(r.y + r.height))


def _pair(query: Sequence[tuple[DetectedObject, Box]], original: Sequence[tuple[DetectedObject, Box]],
          same_label: bool) -> list[tuple[int, int]]:
    """Greedy one-to-one pairing by IoU (highest first) among pairs at ``PAIR_IOU`` or more."""
    options = sorted(((_iou(qb, ob), i, j) for i, (qo, qb) in enumerate(query) for j, (oo, ob) in enumerate(original)
                      if (qo.label == oo.label) == same_label), reverse=True)
    used_q: set[int] = set()
    used_o: set[int] = set()
    pairs = []
    for iou, i, j in options:
        if iou < PAIR_IOU:
            break
        if i in used_q or j in used_o:
            continue
        used_q.add(i)
        used_o.add(j)
        pairs.append((i, j))
    return pairs


def describe_object_changes(query_objects: Sequence[DetectedObject], original_objects: Sequence[DetectedObject],
                            homography: np.ndarray, regions: Sequence[Region], original_size: tuple[int, int],
                            *, claim_score: float = CLAIM_SCORE) -> tuple[ObjectChange, ...]:
    """The object-level changes that the changed ``regions`` support, largest first. ``query_objects`` are in the
    query's pixels, ``original_objects`` and ``regions`` in the original's (``original_size`` = width, height)."""
    if not regions:
        return ()
    region_boxes = [_region_box(r) for r in regions]
    query = [(o, b) for o in query_objects if (b := project_box(o.box, homography, original_size)) is not None]
    original = [(o, tuple(float(v) for v in o.box)) for o in original_objects]

    same = _pair(query, original, same_label=True)
    paired_q = {i for i, _ in same}
    paired_o = {j for _, j in same}
    rest_q = [(i, q) for i, q in enumerate(query) if i not in paired_q]
    rest_o = [(j, o) for j, o in enumerate(original) if j not in paired_o]
    swapped = [(rest_q[a][0], rest_o[b][0])
               for a, b in _pair([q for _, q in rest_q], [o for _, o in rest_o], same_label=False)]
    swapped_q = {i for i, _ in swapped}
    swapped_o = {j for _, j in swapped}

    changes: list[ObjectChange] = []

    def claim(kind: str, obj: DetectedObject, box: Box, within: Sequence[Box], was: str | None = None) -> None:
        if obj.score >= claim_score and _touches(box, within):
            x1, y1 = int(round(box[0])), int(round(box[1]))
            region = Region(x1, y1, max(1, int(round(box[2])) - x1), max(1, int(round(box[3])) - y1))
            changes.append(ObjectChange(kind, obj.label, region, round(obj.score, 3), was))

    for i, j in swapped:
        (qo, qb), (oo, _) = query[i], original[j]
        if oo.score >= claim_score:
            claim("replaced", qo, qb, region_boxes, was=oo.label)
    for i, (qo, qb) in enumerate(query):
        if i not in paired_q and i not in swapped_q:
            claim("added", qo, qb, region_boxes)
    for j, (oo, ob) in enumerate(original):
        if j not in paired_o and j not in swapped_o:
            claim("removed", oo, ob, region_boxes)
    # An object that is still there but changed inside: only for regions no addition/removal already explains
    # (a person pasted onto a bed is "person added", not also "bed changed").
    explained = [(float(c.box.x), float(c.box.y), float(c.box.x + c.box.width), float(c.box.y + c.box.height))
                 for c in changes]
    unexplained = [r for r in region_boxes if not _touches(r, explained)]
    for i, j in same:
        (qo, qb), (oo, ob) = query[i], original[j]
        # the copy's box (carried into the original's frame) where the copy's detection is the surer one
        claim("changed", *((qo, qb) if qo.score >= oo.score else (oo, ob)), unexplained)
    changes.sort(key=lambda c: c.box.width * c.box.height, reverse=True)
    return tuple(changes)
