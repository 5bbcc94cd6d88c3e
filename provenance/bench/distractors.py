"""Extra distractor codes for the large-database runs (``--distractors-codes N``).

The paper adds up to 1M distractors to the databases. We never use random bit strings (they are far easier to reject
than real image hashes and would flatter every method): the first codes are hashes of real images from the
``--distractor-pool`` folders (not already in the database); when N exceeds them, the rest are hashes of
*synthesised* images, each a random crop (20-100 % of the area, aspect 1:2 to 2:1) of a pool image, optionally
mirrored, with brightness/contrast/colour jitter, resized to a short side of 96-256 px, drawn from the dataset's own
distractor photos (or, when it has none, from the first pool images). Every recipe comes from
``(seed, index)``, so the codes are reproducible, and they are cached like any other hash (content key
``synth:v1:<pool digest>:<seed>:<index>``). The run's ``run.json`` and ``results.md`` say how many codes were
real and how many synthesised, and from which pool.

Caveat (stated in the report): synthesised crops of a few dozen photos are less diverse than a million real photos,
so near-duplicate distractors are more common than in the paper's setting.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from provenance.bench.cache import HashCache, file_sha256
from provenance.bench.methods import HashMethod, create_methods, open_image

RECIPE_VERSION = "v1"
POOL_SIDE = 512  # pool images are held in memory at this long side


@dataclass(frozen=True)
class DistractorPlan:
    """``requested`` extra codes: ``real`` from ``extra`` images (not already in the database), the rest synthesised
    from ``pool``."""

    requested: int
    real: int
    synthesised: int
    extra: tuple[str, ...]
    pool: tuple[str, ...]
    pool_digest: str


MAX_SYNTH_POOL = 200  # pool images held in memory by each worker (at POOL_SIDE)


def plan(requested: int, dataset_distractors: Sequence[str | Path], extra: Sequence[str | Path]) -> DistractorPlan:
    """Real codes come from ``extra`` (images not already in the database); synthesised ones are crops of the
    dataset's distractor images, or of the first ``MAX_SYNTH_POOL`` extra images when the dataset has none."""
    extra_t = tuple(str(p) for p in extra)
    pool = tuple(str(p) for p in dataset_distractors)[:MAX_SYNTH_POOL] or extra_t[:MAX_SYNTH_POOL]
    real = min(requested, len(extra_t))
    if requested > real and not pool:
        raise ValueError("--distractors-codes needs real distractor images to start from: the dataset lists none and "
                         "no --distractor-pool was given (random codes are refused on purpose)")
    digest = hashlib.sha256("\n".join(file_sha256(p) for p in pool).encode()).hexdigest()[:16]
    return DistractorPlan(requested, real, requested - real, extra_t[:real], pool, digest)


def synth_image(pool_images: Sequence[Image.Image], seed: int, index: int) -> Image.Image:
    """The ``index``-th synthesised distractor image (see module docstring)."""
    rng = np.random.default_rng([seed, 7_777, index])
    src = pool_images[int(rng.integers(0, len(pool_images)))]
    w, h = src.size
    area = rng.uniform(0.2, 1.0) * w * h
    aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    cw, ch = min(w, int(np.sqrt(area * aspect))), min(h, int(np.sqrt(area / aspect)))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = src.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.7, 1.3))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.7, 1.3))
    img = ImageEnhance.Color(img).enhance(rng.uniform(0.5, 1.5))
    short = int(rng.integers(96, 257))
    scale = short / min(img.size)
    return img.resize((max(8, round(img.width * scale)), max(8, round(img.height * scale))),
                      Image.Resampling.BILINEAR)


def _load_pool(pool: Sequence[str]) -> list[Image.Image]:
    out = []
    for p in pool:
        img = open_image(p)
        img.thumbnail((POOL_SIDE, POOL_SIDE), Image.Resampling.LANCZOS)
        out.append(img)
    return out


_WORKER: dict[str, object] = {}


def _init_worker(pool: tuple[str, ...], names: list[str]) -> None:
    _WORKER["images"] = _load_pool(pool)
    _WORKER["methods"] = create_methods(names)[0]


def _synth_chunk(args: tuple[int, list[int]]) -> dict[str, np.ndarray]:
    seed, indices = args
    images: list[Image.Image] = _WORKER["images"]  # type: ignore[assignment]
    methods: list[HashMethod] = _WORKER["methods"]  # type: ignore[assignment]
    synth = [synth_image(images, seed, i) for i in indices]
    return {m.name: m.hash_many(synth) for m in methods}


def synth_key(p: DistractorPlan, seed: int, index: int) -> str:
    return f"synth:{RECIPE_VERSION}:{p.pool_digest}:{seed}:{index}"


def distractor_codes(p: DistractorPlan, methods: Sequence[HashMethod], cache: HashCache,
                     real_codes: dict[str, dict[str, np.ndarray]], seed: int, workers: int = 2,
                     progress: bool = True) -> dict[str, np.ndarray]:
    """``(requested, n_bytes)`` codes per method: hashes of the ``extra`` real images (``real_codes[method][path]``)
    first, then synthesised ones (from the cache when present, else computed in ``workers`` processes)."""
    from tqdm import tqdm

    keys = [synth_key(p, seed, i) for i in range(p.synthesised)]
    out = {m.name: np.zeros((p.requested, m.n_bytes), np.uint8) for m in methods}
    missing: dict[str, np.ndarray] = {}
    for m in methods:
        arr = out[m.name]
        for j, path in enumerate(p.extra):
            arr[j] = real_codes[m.name][path]
        found = np.zeros(p.synthesised, dtype=bool)
        for start in range(0, p.synthesised, 100_000):
            part = keys[start : start + 100_000]
            got = cache.get_many(part, m.name, m.model_id)
            for j, k in enumerate(part, start=start):
                code = got.get(k)
                if code is not None:
                    arr[p.real + j] = code
                    found[j] = True
        missing[m.name] = np.flatnonzero(~found)

    pooled = [m for m in methods if m.batch_fn is None and missing[m.name].size]
    todo = sorted(set().union(*(missing[m.name].tolist() for m in pooled))) if pooled else []
    if todo:
        chunks = [todo[i : i + 1000] for i in range(0, len(todo), 1000)]
        bar = tqdm(total=len(todo), desc="synth distractors", disable=not progress, unit="img")
        with ProcessPoolExecutor(max(1, workers), mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                 initargs=(p.pool, [m.name for m in pooled])) as ex:
            for idx, result in zip(chunks, ex.map(_synth_chunk, [(seed, c) for c in chunks]), strict=True):
                for m in pooled:
                    codes = result[m.name]
                    out[m.name][p.real + np.asarray(idx)] = codes
                    cache.put_many(((keys[i], c) for i, c in zip(idx, codes, strict=True)), m.name, m.model_id)
                bar.update(len(idx))
        bar.close()
    models = [m for m in methods if m.batch_fn is not None and missing[m.name].size]
    if models:  # neural models stay in this process (one copy of the weights, their own batching)
        images = _load_pool(p.pool)
        for m in models:
            need = missing[m.name].tolist()
            for start in tqdm(range(0, len(need), 64), desc=f"synth distractors {m.name}", disable=not progress):
                part = need[start : start + 64]
                codes = m.hash_many([synth_image(images, seed, i) for i in part])
                out[m.name][p.real + np.asarray(part)] = codes
                cache.put_many(((keys[i], c) for i, c in zip(part, codes, strict=True)), m.name, m.model_id)
    return out
