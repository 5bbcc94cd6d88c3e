"""The ``world`` recipe of ``make-dataset`` (issue 13): a calibration and test set that looks like the world.

Per photo, one reference per size: the photo as stored (capped at ``max_side``) and downscaled to each smaller long
side of ``sizes`` (384 and 256 by default; a size at or above the stored one is skipped). Per reference:
``n_copies`` benign copies of distinct ``platform.KINDS`` (as real platforms make them), and ``n_manipulated`` edits
of distinct kinds (``WORLD_EDITS``), each aimed at one edit-size bucket in turn (``EDIT_BUCKETS``: 0.5 % of the
pixels and up), then lightly re-shared. The changed share of the picture is measured from the edit's mask and
recorded in ``build.json`` with the bucket it falls in (``edit_bucket``), and so is the share it *visibly* changed
(``visible_share``: a channel moved by ``VISIBLE_DELTA`` or more, before the re-share) with its bucket
(``visible_bucket``; ``"imperceptible"`` below ``IMPERCEPTIBLE_SHARE``), as is every copy's size and recipe;
``variant_facts`` reads them back. ``n_thumbnailed`` more edits per reference aim at the three smallest buckets and
are then thumbnailed (``platform.thumbnail_edit``: 30-65 %), as a feed or a preview shows an edited picture.

Everything a variant does is drawn from its own generator seeded by (seed, reference id, variant index), like the
classic recipe, so a dataset is byte-reproducible and does not depend on the worker count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from provenance.bench import manipulations as M
from provenance.bench import platform as P
from provenance.bench.dataset import Pair

__all__ = ["DEFAULT_SIZES", "EDIT_BUCKETS", "IMPERCEPTIBLE_SHARE", "THUMBNAIL_BUCKETS", "VISIBLE_DELTA", "WORLD_EDITS",
           "bucket_of", "reference_sizes", "variant_facts", "visible_bucket_of", "visible_share"]

DEFAULT_SIZES = (0, 384, 256)  # 0: the photo as stored
WORLD_EDITS = ("copy_move", "copy_move_blend", "splice", "object_insertion", "object_removal", "recolour",
               "text_insertion")
#: Edit-size buckets, as shares of the picture's pixels: [lo, hi). Edits aim at each bucket in turn.
EDIT_BUCKETS = ((0.005, 0.01), (0.01, 0.02), (0.02, 0.05), (0.05, 0.10), (0.10, 0.15))
#: Thumbnailed edits aim at the three smallest buckets: what a thumbnail can hide.
THUMBNAIL_BUCKETS = EDIT_BUCKETS[:3]
#: A pixel is visibly changed by an edit when one of its channels moved by at least this much (of 255), before the
#: re-share: a mask over a uniform area (black pasted on black, an inpainted plain wall) can change next to nothing.
VISIBLE_DELTA = 16
#: Edits that visibly change less than this share of the picture (half the smallest bucket) are imperceptible: they
#: are reported apart, not counted as edits a lookup must catch.
IMPERCEPTIBLE_SHARE = 0.0025


def bucket_of(share: float) -> str:
    """The report label of an edit that changed ``share`` of the pixels: ``"<1%"``, ``"1-2%"``, ... ``">=10%"``."""
    if share < 0.01:
        return "<1%"
    for lo, hi in EDIT_BUCKETS[1:-1]:
        if share < hi:
            return f"{lo * 100:g}-{hi * 100:g}%"
    return f">={EDIT_BUCKETS[-1][0] * 100:g}%"


def visible_bucket_of(share: float) -> str:
    """The bucket of a visible share: ``"imperceptible"`` below ``IMPERCEPTIBLE_SHARE``, else its edit-size bucket."""
    return "imperceptible" if share < IMPERCEPTIBLE_SHARE else bucket_of(share)


def visible_share(original: np.ndarray, edited: np.ndarray) -> float:
    """The share of the picture's pixels an edit visibly changed (a channel moved by ``VISIBLE_DELTA`` or more)."""
    if original.shape != edited.shape:
        raise ValueError(f"shapes differ: {original.shape} vs {edited.shape}")
    delta = np.abs(original.astype(np.int16) - edited.astype(np.int16)).max(axis=-1)
    return float((delta >= VISIBLE_DELTA).mean())


def reference_sizes(stored: tuple[int, int], sizes: tuple[int, ...]) -> list[int]:
    """Long sides the photo is registered at: ``0`` (as stored) first, then each smaller size asked for."""
    long_side = max(stored)
    out: list[int] = []
    for s in sizes:
        side = long_side if s == 0 else s
        if side <= long_side and side not in out:
            out.append(side)
    return out


def _resized(img: Image.Image, side: int) -> Image.Image:
    if max(img.size) == side:
        return img
    scale = side / max(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.LANCZOS)


def _scaled_boxes(boxes: tuple[M.Box, ...], scale: float, w: int, h: int) -> tuple[M.Box, ...]:
    out = []
    for x1, y1, x2, y2 in boxes:
        b = (int(x1 * scale), int(y1 * scale), min(w, int(np.ceil(x2 * scale))), min(h, int(np.ceil(y2 * scale))))
        if b[2] - b[0] >= 4 and b[3] - b[1] >= 4:
            out.append(b)
    return tuple(out)


@dataclass(frozen=True)
class _EditVariant:
    """One edit of a reference: ``stem`` (its path without the suffix), the edit's name and the share it aims at."""

    stem: str
    name: str
    target: tuple[float, float]

    def write(self, out: Path, ref_rel: str, ref_arr: np.ndarray, regions: tuple[M.Box, ...], job: Any,
              rng: np.random.Generator, common: dict[str, Any], recipes: dict[str, Any], *, thumbnail: bool) -> Pair:
        """Edit the reference, re-share it lightly (or thumbnail it), write the copy, its mask and its recipe."""
        ctx = M.EditContext(regions, job.clipart, job.logos, job.donors, job.config.font, area=self.target)
        edited, mask, info = {**M.EDITS, **M.EXTRA_EDITS}[self.name](ref_arr, rng, ctx)
        if thumbnail:
            img, enc, scale = P.thumbnail_edit(Image.fromarray(edited), rng)
            info = {"thumbnail_scale": scale, **info}
        else:
            img, enc = P.reshare_edit(Image.fromarray(edited), rng)
        rel = f"{self.stem}_{self.name}{enc.suffix}"
        (out / rel).write_bytes(P.encode(img, enc))
        mask_img = Image.fromarray(mask.astype(np.uint8) * 255, "L").resize(img.size, Image.Resampling.NEAREST)
        mask_img.save(out / f"{self.stem}_{self.name}.mask.png", "PNG")
        share = float(mask.mean())
        visible = visible_share(ref_arr, edited)
        recipes[rel] = {"kind": self.name, **common, "size": list(img.size), "encoding": enc.to_obj(),
                        "target_share": list(self.target), "mask_share": round(share, 5),
                        "edit_bucket": bucket_of(share), "visible_share": round(visible, 5),
                        "visible_bucket": visible_bucket_of(visible), **info}
        return Pair(ref_rel, rel, "manipulated", self.name, job.subset)


def build_world_photo(job: Any) -> tuple[list[Pair], dict[str, Any]]:
    """Every reference size, copy and edit of one photo (``job`` is ``make_dataset._Job``)."""
    from provenance.bench.make_dataset import _variant_rng, load_rgb

    cfg, out = job.config, Path(job.out)
    stored = load_rgb(job.photo, cfg.max_side)  # the photo as stored, capped at max_side (as its regions are)
    pairs: list[Pair] = []
    recipes: dict[str, Any] = {}
    (out / "references").mkdir(parents=True, exist_ok=True)
    for side in reference_sizes(stored.size, cfg.sizes):
        ref = _resized(stored, side)
        ref_id = f"{job.photo_id}@{side}"
        ref_rel = f"references/{ref_id}.jpg"
        (out / ref_rel).write_bytes(P.encode(ref, P.Encoding("JPEG", 90)))
        qdir = f"queries/{ref_id}"
        (out / qdir).mkdir(parents=True, exist_ok=True)
        common = {"reference_side": side, "reference_size": list(ref.size)}

        kinds = list(P.KINDS)
        order = _variant_rng(cfg.seed, ref_id, 1000).permutation(len(kinds))
        for i in range(cfg.n_copies):
            kind = kinds[order[i % len(kinds)]]
            img, enc, info = P.KINDS[kind](ref, _variant_rng(cfg.seed, ref_id, 1000 + i + 1))
            rel = f"{qdir}/c{i + 1:02d}_{kind}{enc.suffix}"
            (out / rel).write_bytes(P.encode(img, enc))
            pairs.append(Pair(ref_rel, rel, "benign", f"world:{kind}", job.subset))
            recipes[rel] = {"kind": f"world:{kind}", **common, "size": list(img.size), "encoding": enc.to_obj(),
                            **info}

        ref_arr = np.asarray(ref)
        regions = _scaled_boxes(job.regions, side / max(stored.size), ref.width, ref.height)
        # Edits lightly re-shared, then edits thumbnailed: each group from its own generators (2000 + i, 3000 + i), the
        # thumbnailed after every other variant, so datasets built without them stay byte for byte what they were.
        for prefix, base, buckets, count, thumbnail in (("m", 2000, EDIT_BUCKETS, cfg.n_manipulated, False),
                                                        ("t", 3000, THUMBNAIL_BUCKETS, cfg.n_thumbnailed, True)):
            order = _variant_rng(cfg.seed, ref_id, base).permutation(len(WORLD_EDITS))
            for i in range(count):
                rng = _variant_rng(cfg.seed, ref_id, base + i + 1)
                target = buckets[(i + int(order[0])) % len(buckets)]
                edit = _EditVariant(f"{qdir}/{prefix}{i + 1:02d}", WORLD_EDITS[order[i % len(WORLD_EDITS)]], target)
                pairs.append(edit.write(out, ref_rel, ref_arr, regions, job, rng, common, recipes,
                                        thumbnail=thumbnail))
    return pairs, {"photo": job.photo, "regions": [list(b) for b in job.regions],
                   "region_source": job.region_source, "variants": recipes}


def variant_facts(root: str | Path) -> dict[str, dict[str, Any]]:
    """Query path -> its recipe from ``build.json`` (for reports per reference size and per edit bucket); empty
    when the dataset has no ``build.json``."""
    path = Path(root) / "build.json"
    if not path.is_file():
        return {}
    build = json.loads(path.read_text(encoding="utf-8"))
    return {rel: info for photo in build.get("photos", {}).values() for rel, info in photo.get("variants", {}).items()}
