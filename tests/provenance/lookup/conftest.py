"""Real photos for the image-analysis tests (features, geometry, comparison), built once per session.

Variants use the benchmark's own transforms and edits (``provenance.bench``), with fixed seeds, so a test sees
the same kind of re-share or manipulation the calibration saw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SOURCE = "kodak24/kodim23.png"  # parrots: rich texture and colour, 500x500
DONOR = "kodak24/kodim05.png"  # cut-outs for insertions come from here (no dependency on clipart being installed)
UNRELATED = "skimage/coffee.png"


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def registered_at(path: Path, side: int):
    """A shared photo as the world recipe registers it: resized (Lanczos) to ``side`` px on its long side, with its
    local features. (The ``shared_photos`` fixture skips when the shared data is absent; a photo missing from it is
    an error.)"""
    from provenance.lookup.features import extract_features

    im = Image.fromarray(load_rgb(path))
    s = side / max(im.size)
    ref = np.asarray(im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.LANCZOS))
    return ref, extract_features(ref)


@pytest.fixture(scope="session")
def house(shared_photos: Path):
    """kodim08 (brick houses, shutters, roof tiles: fine texture everywhere) registered at 384 px."""
    return registered_at(shared_photos / "kodak24" / "kodim08.png", 384)


@pytest.fixture(scope="session")
def photo_paths(shared_photos: Path) -> dict[str, Path]:
    paths = {"source": shared_photos / SOURCE, "donor": shared_photos / DONOR, "unrelated": shared_photos / UNRELATED}
    for p in paths.values():
        if not p.is_file():
            pytest.skip(f"{p} missing")
    return paths


@pytest.fixture(scope="session")
def reference_rgb(photo_paths: dict[str, Path]) -> np.ndarray:
    return load_rgb(photo_paths["source"])


@pytest.fixture(scope="session")
def reference_features(reference_rgb: np.ndarray):
    from provenance.lookup.features import extract_features

    return extract_features(reference_rgb)


def _jpeg(img: Image.Image, quality: int) -> np.ndarray:
    from provenance.bench import transforms as T

    return np.asarray(T.jpeg(img, quality))


@pytest.fixture(scope="session")
def benign_query(reference_rgb: np.ndarray) -> np.ndarray:
    """Re-shared, not edited: downscaled, colour jitter, coloured padding, JPEG q70 (bench transforms)."""
    from provenance.bench import transforms as T

    rng = np.random.default_rng(7)
    img = T.resize_by(Image.fromarray(reference_rgb), 0.7)
    img = T.padding(T.colour(img, rng), rng)
    return _jpeg(img, 70)


@pytest.fixture(scope="session")
def flipped_query(reference_rgb: np.ndarray) -> np.ndarray:
    from provenance.bench import transforms as T

    return _jpeg(T.flip(Image.fromarray(reference_rgb), np.random.default_rng(0)), 85)


def _edited(reference_rgb: np.ndarray, edit: str, ctx, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An edit of the reference (its mask is in the reference frame), then the benchmark's light re-share."""
    from provenance.bench import manipulations as M
    from provenance.bench import transforms as T

    rng = np.random.default_rng(seed)
    edited, mask, _ = M.EDITS[edit](reference_rgb, rng, ctx)
    img, quality = T.reshare(Image.fromarray(edited), rng)
    return _jpeg(img, quality), mask


@pytest.fixture(scope="session")
def inserted_query(reference_rgb: np.ndarray, photo_paths: dict[str, Path]) -> tuple[np.ndarray, np.ndarray]:
    """A region of another photo pasted in (the no-clipart object insertion), re-shared."""
    from provenance.bench.manipulations import EditContext

    return _edited(reference_rgb, "object_insertion", EditContext(donors=(str(photo_paths["donor"]),)), 1)


@pytest.fixture(scope="session")
def removed_query(reference_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The red parrot's head inpainted away, re-shared."""
    from provenance.bench.manipulations import EditContext

    return _edited(reference_rgb, "object_removal", EditContext(regions=((170, 60, 330, 260),)), 2)
