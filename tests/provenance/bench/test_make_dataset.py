"""The dataset builder: reproducible to the byte under a fixed seed (whatever the worker count), complete, and with
a mask beside every manipulated image."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from provenance.bench import manipulations as M
from provenance.bench.make_dataset import BuildConfig, build_dataset


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _config(seed: int = 3, workers: int = 1) -> BuildConfig:
    return BuildConfig(seed=seed, n_seen=3, n_unseen=2, n_manipulated=4, max_side=256, workers=workers,
                       regions="saliency")


def test_build_is_reproducible_and_complete(few_photos: Path, tmp_path: Path) -> None:
    a = build_dataset(few_photos, tmp_path / "a", _config(workers=1), progress=False)
    build_dataset(few_photos, tmp_path / "b", _config(workers=2), progress=False)
    da, db = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert da == db
    assert len(a.references) == 3 and len(a.queries) == 3 * (3 + 2 + 4)
    assert {p.dataset for p in a.pairs} == {"skimage", "kodak24"}
    manipulated = [p for p in a.pairs if not p.benign]
    assert len(manipulated) == 12 and len({p.kind for p in manipulated}) >= 4
    for p in manipulated:
        mask_path = a.path(p.query).with_name(Path(p.query).stem + ".mask.png")
        with Image.open(mask_path) as mask, Image.open(a.path(p.query)) as img:
            assert mask.size == img.size and mask.mode == "L"
            assert np.asarray(mask).any(), p.query
    kinds = {p.kind.split(":")[0] for p in a.pairs if p.benign}
    assert kinds == {"seen", "unseen"}
    assert all(p.kind.startswith("seen:jpeg_resize+") for p in a.pairs if p.kind.startswith("seen:"))
    build = json.loads((tmp_path / "a" / "build.json").read_text())
    assert build["seed"] == 3 and len(build["photos"]) == 3

    build_dataset(few_photos, tmp_path / "c", _config(seed=4), progress=False)
    dc = _digests(tmp_path / "c")
    changed = [k for k in da if k.startswith("queries/") and da[k] != dc.get(k)]
    assert len(changed) > 0.9 * len([k for k in da if k.startswith("queries/")])
    with pytest.raises(FileExistsError):
        build_dataset(few_photos, tmp_path / "a", _config(), progress=False)


def test_every_edit_changes_the_masked_region_only() -> None:
    rng0 = np.random.default_rng(0)
    img = (np.stack(np.meshgrid(np.arange(160), np.arange(120)), -1).sum(-1)[..., None] * [1, 2, 3] % 256)
    img = np.clip(img + rng0.integers(0, 30, img.shape), 0, 255).astype(np.uint8)
    donor = Path(__file__).with_name("donor.png")
    Image.fromarray(255 - img).save(donor)
    try:
        ctx = M.EditContext(regions=((40, 30, 100, 90),), donors=(str(donor),))  # no clipart: the fallbacks
        for name, edit in M.EDITS.items():
            out, mask, info = edit(img, np.random.default_rng(1), ctx)
            assert out.shape == img.shape and out.dtype == np.uint8 and mask.shape == img.shape[:2], name
            changed = np.abs(out.astype(int) - img.astype(int)).max(-1) > 0
            assert changed.any(), name
            assert not (changed & ~mask).any(), name
            assert isinstance(info, dict)
    finally:
        donor.unlink()
