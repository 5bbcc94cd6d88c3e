"""Build an attribution dataset (``dataset.py`` format) from any folder of photos.

Per photo: the reference (RGB, long side <= ``max_side``, PNG), ``n_seen`` benign variants with seen transforms,
``n_unseen`` with unseen corruptions, and ``n_manipulated`` local edits (distinct edit types per photo while there
are enough), each edit saved with its change mask ``<name>.mask.png`` and re-shared lightly (mild resize + JPEG).
Optional distractor folders are copied in (long side <= ``max_side``, JPEG).

Reproducible: every photo (and every variant of it) draws from its own generator seeded by (seed, photo id,
variant index), so the bytes do not depend on worker count or order, and changing ``n_seen`` does not change the
manipulated images. ``build.json`` records the recipe of every image (no timestamps, so rebuilds compare equal).

``n_small`` (classic recipe, issue 17) adds that many edits per photo of the kinds that move the fewest pixels
(``small_edits.py``: small insertions and removals, a face or object swapped within the photo, a changed text line;
1-5 % of the picture), drawn from their own generators, so the rest of a dataset is byte-identical with or without
them. A classic build from a corpus with a fixed hold-out (a folder at or above ``photos`` holding ``MANIFEST.csv``,
as ``../shared/data/train-photos``) keeps only its training split unless ``split`` says otherwise: held-out photos
(``splits.is_held_out``) never become training variants. Split keys are paths relative to that corpus root.

``recipe="world"`` (issue 13; ``world.py``) registers each photo at several sizes, makes ``n_copies`` benign copies
as platforms make them (``platform.py``) and ``n_manipulated`` edits across size buckets down to 0.5 % of the
pixels. ``split`` keeps only the photos of one hold-out split (``splits.py``: hash-based, by source photo),
``limit`` the first photos in a stable pseudo-random order, and ``n_unrelated`` photos of the training split (never
registered) are copied in as distractors, the unrelated queries of the system benchmark.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from provenance.bench import manipulations as M
from provenance.bench import small_edits as S
from provenance.bench import transforms as T
from provenance.bench.dataset import Dataset, Pair, load_dataset, write_dataset

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
DEFAULT_CLIPART = "/usr/share/openclipart/png"
LOGO_FOLDERS = ("logos", "signs_and_symbols")
FONT_CANDIDATES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                   "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@dataclass(frozen=True)
class BuildConfig:
    """Knobs of a build; defaults make /work/shared/data/photos (49 photos) a few-minute build on 2 cores."""

    seed: int = 0
    n_seen: int = 6
    n_unseen: int = 3
    n_manipulated: int = 6
    max_side: int = 1024
    workers: int = 2
    regions: str = "auto"  # auto (detector if hasher.detect works, else saliency) | detector | saliency
    clipart_dir: str | None = DEFAULT_CLIPART
    font: str | None = field(default_factory=lambda: next((f for f in FONT_CANDIDATES if Path(f).is_file()), None))
    recipe: str = "classic"  # classic | world
    sizes: tuple[int, ...] = (0, 384, 256)  # world: reference long sides (0 = as stored)
    n_copies: int = 6  # world: benign platform copies per reference
    split: str | None = None  # keep only the photos of this hold-out split (splits.py); None: all
    limit: int = 0  # at most this many photos (a stable pseudo-random subset); 0: all
    n_unrelated: int = 0  # world: training-split photos copied in as unrelated queries (distractors)
    n_small: int = 0  # classic: edits per photo of the kinds that move the fewest pixels (small_edits.py)
    n_thumbnailed: int = 0  # world: edits per reference of the smallest buckets, then thumbnailed (30-65 %)


@dataclass(frozen=True)
class _Job:
    photo: str
    photo_id: str
    subset: str
    regions: tuple[M.Box, ...]
    region_source: str
    donors: tuple[str, ...]
    clipart: tuple[str, ...]
    logos: tuple[str, ...]
    config: BuildConfig
    out: str
    people: tuple[M.Box, ...] = ()


#: A corpus with a fixed hold-out has this file at its root (``../shared/data/train-photos/MANIFEST.csv``).
CORPUS_MARKER = "MANIFEST.csv"


def corpus_root(photos: Path) -> Path | None:
    """The nearest folder at or above ``photos`` that holds a corpus manifest: split keys are relative to it."""
    for folder in (photos, *photos.resolve().parents):
        if (folder / CORPUS_MARKER).is_file():
            return folder
    return None


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _slug(rel: Path) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", rel.with_suffix("").as_posix().replace("/", "__"))


def load_rgb(path: str | Path, max_side: int) -> Image.Image:
    with Image.open(path) as im:
        img = im.convert("RGB")
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.LANCZOS)
    return img


def _variant_rng(seed: int, photo_id: str, index: int) -> np.random.Generator:
    digest = int.from_bytes(hashlib.sha256(photo_id.encode()).digest()[:8], "big")
    return np.random.default_rng([seed, digest, index])


# --- object regions -----------------------------------------------------------------------------------------------

def saliency_box(img: np.ndarray) -> M.Box:
    """Bounding box of the largest salient blob (spectral-residual saliency + Otsu), or the central quarter (also
    where OpenCV is built without the contrib saliency module, as on the GPU machine's image)."""
    h, w = img.shape[:2]
    if not hasattr(cv2, "saliency"):
        return w // 4, h // 4, 3 * w // 4, 3 * h // 4
    ok, sal = cv2.saliency.StaticSaliencySpectralResidual_create().computeSaliency(img)
    if ok:
        sal = cv2.GaussianBlur(cv2.resize(sal.astype(np.float32), (w, h)), (0, 0), max(1.0, 0.01 * max(w, h)))
        sal8 = cv2.normalize(sal, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        _, binary = cv2.threshold(sal8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        n, _, stats, _ = cv2.connectedComponentsWithStats(binary)
        if n > 1:
            best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            x, y, bw, bh = (int(v) for v in stats[best, :4])
            if bw * bh >= 0.005 * w * h:
                return x, y, x + bw, y + bh
    return w // 4, h // 4, 3 * w // 4, 3 * h // 4


def _make_detector(mode: str) -> tuple[Any, str]:
    if mode == "saliency":
        return None, "saliency"
    try:
        from hasher.detect import create_detector

        det = create_detector()
        return det, f"detector:{det.model_id}"
    except Exception as exc:  # hasher.detect is built in parallel; a build must not depend on it
        if mode == "detector":
            raise
        log.warning("no object detector (%s); using saliency regions", exc)
        return None, "saliency"


def object_regions(img: np.ndarray, detector: Any) -> list[M.Box]:
    return detect_regions(img, detector)[0]


def detect_regions(img: np.ndarray, detector: Any) -> tuple[list[M.Box], list[M.Box]]:
    """Object boxes of at least 1 % of the picture (a saliency box when there are none), and the people among
    them, from one detector call."""
    h, w = img.shape[:2]
    boxes: list[M.Box] = []
    people: list[M.Box] = []
    if detector is not None:
        for d in detector.detect(img, max_objects=8, min_score=0.3):
            x1, y1, x2, y2 = (int(round(v)) for v in d.box)
            x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
            if (x2 - x1) * (y2 - y1) >= 0.01 * w * h:
                boxes.append((x1, y1, x2, y2))
                if getattr(d, "label_name", "") == "person":
                    people.append((x1, y1, x2, y2))
    return boxes or [saliency_box(img)], people


# --- per-photo work (runs in worker processes) --------------------------------------------------------------------

def _save_jpeg(img: Image.Image, path: Path, quality: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", quality=int(quality))


def _build_photo(job: _Job) -> tuple[list[Pair], dict[str, Any]]:
    cv2.setNumThreads(1)
    cfg, out = job.config, Path(job.out)
    if cfg.recipe == "world":
        from provenance.bench.world import build_world_photo

        return build_world_photo(job)
    ref = load_rgb(job.photo, cfg.max_side)
    ref_rel = f"references/{job.photo_id}.png"
    (out / "references").mkdir(parents=True, exist_ok=True)
    ref.save(out / ref_rel, "PNG")
    qdir = f"queries/{job.photo_id}"
    pairs: list[Pair] = []
    recipes: dict[str, Any] = {}
    index = 0

    def add(rel: str, relation: str, kind: str, info: dict[str, Any]) -> None:
        pairs.append(Pair(ref_rel, rel, relation, kind, job.subset))
        recipes[rel] = {"kind": kind, **info}

    for i in range(cfg.n_seen):
        rng = _variant_rng(cfg.seed, job.photo_id, index := index + 1)
        img, quality, kind = T.seen_variant(ref, rng)
        rel = f"{qdir}/s{i + 1:02d}.jpg"
        _save_jpeg(img, out / rel, quality)
        add(rel, "benign", kind, {"quality": quality})

    unseen_names = list(T.UNSEEN)
    order = _variant_rng(cfg.seed, job.photo_id, 1000).permutation(len(unseen_names))
    for i in range(cfg.n_unseen):
        rng = _variant_rng(cfg.seed, job.photo_id, 1000 + i + 1)
        img, quality, kind = T.unseen_variant(ref, unseen_names[order[i % len(order)]], rng)
        rel = f"{qdir}/u{i + 1:02d}.jpg"
        _save_jpeg(img, out / rel, quality)
        add(rel, "benign", kind, {"quality": quality})

    ctx = M.EditContext(job.regions, job.clipart, job.logos, job.donors, cfg.font, people=job.people)
    ref_arr = np.asarray(ref)
    # the classic edits, then (issue 17) the smallest ones, each kind list from its own seeded order and generators
    for edits, first_index, offset in ((M.EDITS, 2000, 0), (S.SMALL_EDITS, 3000, cfg.n_manipulated)):
        names = list(edits)
        order = _variant_rng(cfg.seed, job.photo_id, first_index).permutation(len(names))
        for i in range(cfg.n_manipulated if edits is M.EDITS else cfg.n_small):
            rng = _variant_rng(cfg.seed, job.photo_id, first_index + i + 1)
            name = names[order[i % len(order)]]
            edited, mask, info = edits[name](ref_arr, rng, ctx)
            img, quality = T.reshare(Image.fromarray(edited), rng)
            stem = f"{qdir}/m{offset + i + 1:02d}_{name}"
            _save_jpeg(img, out / f"{stem}.jpg", quality)
            mask_img = Image.fromarray(mask.astype(np.uint8) * 255, "L").resize(img.size, Image.Resampling.NEAREST)
            mask_img.save(out / f"{stem}.mask.png", "PNG")
            add(f"{stem}.jpg", "manipulated", name,
                {"quality": quality, "mask_share": round(float(mask.mean()), 4), **info})
    manifest = {"photo": job.photo, "regions": [list(b) for b in job.regions], "region_source": job.region_source,
                "variants": recipes}
    if cfg.n_small:
        manifest["people"] = [list(b) for b in job.people]
    return pairs, manifest


# --- the build ----------------------------------------------------------------------------------------------------

def _clipart_pools(clipart_dir: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if not clipart_dir or not Path(clipart_dir).is_dir():
        return (), ()
    files = [p for p in sorted(Path(clipart_dir).rglob("*.png")) if p.is_file()]
    logos = tuple(str(p) for p in files if p.relative_to(clipart_dir).parts[0] in LOGO_FOLDERS)
    return tuple(str(p) for p in files), logos


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("pillow", "numpy", "opencv-contrib-python-headless"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def build_dataset(photos: str | Path, out: str | Path, config: BuildConfig | None = None,
                  distractor_dirs: tuple[str | Path, ...] = (), overwrite: bool = False,
                  progress: bool = True) -> Dataset:
    """Build the dataset into ``out`` and return it loaded (which also validates it)."""
    from tqdm import tqdm

    cfg = config or BuildConfig()
    photos, out = Path(photos), Path(out)
    if cfg.recipe not in ("classic", "world"):
        raise ValueError(f"unknown recipe {cfg.recipe!r}: use 'classic' or 'world'")
    if cfg.n_unrelated and cfg.split in (None, "train"):
        raise ValueError("unrelated photos come from the training split: build a held-out split "
                         "(calibration or test) to add them")
    all_files = list_images(photos)
    root = corpus_root(photos)
    keys = root or photos  # split keys: paths relative to the corpus root
    if cfg.recipe == "classic" and cfg.split is None and root is not None:
        cfg = replace(cfg, split="train")
        log.info("%s is part of a corpus with a fixed hold-out (%s): its held-out photos are left out", photos, keys)
    files = select_photos(all_files, keys, cfg.split, cfg.limit)
    if not files:
        raise ValueError(f"no images under {photos}" + (f" in split {cfg.split!r}" if cfg.split else ""))
    if (out / "pairs.csv").exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a dataset; pass overwrite=True (--overwrite) to rebuild it")
    for sub in ("references", "queries", "distractors"):
        shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)

    clipart, logos = _clipart_pools(cfg.clipart_dir)
    detector, region_source = _make_detector(cfg.regions)
    jobs: list[_Job] = []
    for f in tqdm(files, desc="regions", disable=not progress):
        rel = f.relative_to(photos)
        subset = rel.parts[0] if len(rel.parts) > 1 else photos.name
        regions, people = detect_regions(np.asarray(load_rgb(f, cfg.max_side)), detector)
        donors = tuple(str(d) for d in files if d != f) or (str(f),)
        jobs.append(_Job(str(f), _slug(rel), subset, tuple(regions), region_source, donors, clipart, logos, cfg,
                         str(out), tuple(people) if cfg.n_small else ()))

    pairs: list[Pair] = []
    manifest: dict[str, Any] = {}
    if cfg.workers > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn")) as pool:
            results = list(tqdm(pool.map(_build_photo, jobs), total=len(jobs), desc="photos", disable=not progress))
    else:
        results = [_build_photo(j) for j in tqdm(jobs, desc="photos", disable=not progress)]
    for job, (rows, info) in zip(jobs, results, strict=True):
        pairs.extend(rows)
        manifest[job.photo_id] = info

    distractors = _copy_distractors(distractor_dirs, out, cfg.max_side)
    if cfg.n_unrelated:  # a different draw for each held-out split, so no unrelated photo serves two of them
        from provenance.bench.splits import order_key

        train = select_photos(all_files, keys, "train", 0)
        train.sort(key=lambda f: order_key(f"{cfg.split}:{f.relative_to(keys).as_posix()}"))
        distractors += _copy_unrelated(sorted(train[: cfg.n_unrelated]), photos, out)
    write_dataset(out, pairs, distractors)
    cfg_dict = asdict(cfg)
    cfg_dict.pop("workers")  # does not change the output
    if not cfg.n_small:
        cfg_dict.pop("n_small")  # build.json of a dataset without small edits stays as it was
    build = {"seed": cfg.seed, "config": cfg_dict, "versions": _versions(), "region_source": region_source,
             "clipart_files": len(clipart), "logo_files": len(logos),
             "sources": {"photos": str(photos), "distractors": [str(d) for d in distractor_dirs],
                         "clipart": (f"{cfg.clipart_dir} (Debian openclipart-png, public domain)"
                                     if clipart else "none: donor-photo regions stand in for cut-outs")},
             "photos": manifest}
    (out / "build.json").write_text(json.dumps(build, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return load_dataset(out)


def select_photos(files: list[Path], root: Path, split: str | None, limit: int) -> list[Path]:
    """The photos of one hold-out split (all when None), then at most ``limit`` of them in a stable pseudo-random
    order (a smaller build is a subset of a larger one); the result is sorted."""
    from provenance.bench.splits import SPLITS, order_key, split_of

    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {SPLITS}")
    keep = [f for f in files if split is None or split_of(f.relative_to(root).as_posix()) == split]
    if limit:
        keep = sorted(keep, key=lambda f: order_key(f.relative_to(root).as_posix()))[:limit]
    return sorted(keep)


def _copy_unrelated(files: list[Path], root: Path, out: Path) -> list[str]:
    """Photos never registered, copied byte for byte (as a journalist would upload them)."""
    rels = []
    for f in files:
        rel = f"distractors/unrelated_{_slug(f.relative_to(root))}{f.suffix.lower()}"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(f.read_bytes())
        rels.append(rel)
    return rels


def _copy_distractors(dirs: tuple[str | Path, ...], out: Path, max_side: int) -> list[str]:
    rels: list[str] = []
    for n, folder in enumerate(dirs):
        for f in list_images(folder):
            try:
                img = load_rgb(f, max_side)
            except OSError as exc:
                log.warning("distractor %s skipped: %s", f, exc)
                continue
            rel = f"distractors/{n}_{_slug(f.relative_to(folder))}.jpg"
            _save_jpeg(img, out / rel, 90)
            rels.append(rel)
    return rels
