"""The edits that move the fewest pixels (issue 17): each changes 1-5 % of the picture, only inside its mask, the
same way for the same seed; the classic build adds them without changing anything else, and never builds training
variants from a corpus's held-out photos."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from provenance.bench import manipulations as M
from provenance.bench import small_edits as S
from provenance.bench.make_dataset import DEFAULT_CLIPART, BuildConfig, _clipart_pools, build_dataset
from provenance.bench.splits import split_of

LO, HI = S.SMALL_AREA


def _rgb(path: Path, side: int = 384) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((side, side))
        return np.asarray(im).copy()


@pytest.fixture(scope="module")
def photos(shared_photos: Path) -> dict[str, np.ndarray]:
    return {name: _rgb(shared_photos / name) for name in
            ("skimage/coffee.png", "skimage/astronaut.png", "kodak24/kodim23.png", "thorn_perception/image3.jpg")}


def _contexts(shared_photos: Path, img: np.ndarray) -> list[M.EditContext]:
    h, w = img.shape[:2]
    donors = (str(shared_photos / "kodak24/kodim05.png"),)
    clipart, logos = _clipart_pools(DEFAULT_CLIPART)
    regions = ((w // 10, h // 8, w // 3, h // 2), (w // 2, h // 2, 9 * w // 10, 9 * h // 10))
    out = [M.EditContext(regions=regions, donors=donors),  # no clipart: the donor fallback
           M.EditContext(donors=donors)]  # no regions: random places
    if clipart:
        out.append(M.EditContext(regions=regions, clipart=clipart, logos=logos, donors=donors))
    return out


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int)).max(-1) > 0


@pytest.mark.parametrize("name", list(S.SMALL_EDITS))
def test_each_small_edit_changes_1_to_5_percent_only_inside_its_mask(name: str, photos, shared_photos) -> None:
    edit = S.SMALL_EDITS[name]
    for img in photos.values():
        for ctx in _contexts(shared_photos, img):
            for seed in range(3):
                out, mask, info = edit(img, np.random.default_rng(seed), ctx)
                assert out.shape == img.shape and out.dtype == np.uint8 and mask.shape == img.shape[:2]
                assert LO <= mask.mean() <= HI, (name, seed, float(mask.mean()), info)
                changed = _changed(out, img)
                assert changed.any() and not (changed & ~mask).any(), (name, seed)
                again, again_mask, _ = edit(img, np.random.default_rng(seed), ctx)
                assert np.array_equal(again, out) and np.array_equal(again_mask, mask)
                json.dumps(info)


def test_a_custom_range_is_honoured(photos) -> None:
    img = photos["kodak24/kodim23.png"]
    ctx = M.EditContext(area=(0.005, 0.01), donors=())
    for name in ("object_swap", "text_line_change", "small_removal"):
        _, mask, _ = S.SMALL_EDITS[name](img, np.random.default_rng(1), ctx)
        assert 0.005 <= mask.mean() <= 0.01, name


def test_swap_prefers_two_faces_then_two_objects(photos) -> None:
    img = photos["skimage/astronaut.png"]
    h, w = img.shape[:2]
    people = ((20, 30, 140, 380), (220, 40, 360, 380))
    _, mask, info = S.object_swap(img, np.random.default_rng(0), M.EditContext(people=people))
    assert info["what"] == "faces"
    for person in people:  # each face's centre lies in the mask
        x1, y1, x2, y2 = S.head_box(person)
        assert mask[(y1 + y2) // 2, (x1 + x2) // 2]
    regions = ((10, 10, 100, 100), (200, 200, 300, 300))
    _, _, info = S.object_swap(img, np.random.default_rng(0), M.EditContext(regions=regions))
    assert info["what"] == "objects"
    _, _, info = S.object_swap(img, np.random.default_rng(0), M.EditContext())
    assert info["what"].endswith("region and another place")
    a, b = info["boxes"]
    assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])


def test_text_line_change_rewrites_a_line_of_text(photos) -> None:
    img = photos["kodak24/kodim23.png"].copy()
    h, w = img.shape[:2]
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    bar = (w // 8, h // 2, 7 * w // 8, h // 2 + h // 12)
    draw.rectangle(bar, fill=(240, 240, 235))
    draw.text((bar[0] + 6, bar[1] + 2), "OPEN DAILY 9 TO 5", fill=(10, 10, 10), font=M._font(M.EditContext(), h // 16))
    signed = np.asarray(pil).copy()
    lines = S.find_text_lines(signed)
    assert lines and any(abs((y1 + y2) / 2 - (bar[1] + bar[3]) / 2) < h // 12 for _, y1, _, y2 in lines)
    out, mask, info = S.text_line_change(signed, np.random.default_rng(0), M.EditContext())
    assert info["line"] == "text-like line" and LO <= mask.mean() <= HI
    changed = _changed(out, signed)
    assert changed.any() and not (changed & ~mask).any()
    # no text at all: it writes over the flattest band instead, and says so
    _, mask, info = S.text_line_change(photos["skimage/coffee.png"], np.random.default_rng(0), M.EditContext())
    assert info["line"].startswith("none") or info["line"] == "text-like line"
    assert LO <= mask.mean() <= HI


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_classic_build_adds_small_edits_and_changes_nothing_else(few_photos: Path, tmp_path: Path) -> None:
    base = BuildConfig(seed=5, n_seen=2, n_unseen=1, n_manipulated=3, max_side=256, workers=1, regions="saliency")
    plain = build_dataset(few_photos, tmp_path / "plain", base, progress=False)
    small = build_dataset(few_photos, tmp_path / "small", BuildConfig(**{**base.__dict__, "n_small": 4}),
                          progress=False)
    dp, ds = _digests(tmp_path / "plain"), _digests(tmp_path / "small")
    same = {k for k in dp if k not in ("pairs.csv", "build.json")}
    assert all(ds[k] == dp[k] for k in same)  # every image and mask of the plain build, byte for byte
    added = [p for p in small.pairs if p not in plain.pairs]
    assert len(added) == 3 * 4 and {p.kind for p in added} == set(S.SMALL_EDITS)
    assert all(not p.benign for p in added) and set(plain.pairs) <= set(small.pairs)
    build = json.loads((tmp_path / "small" / "build.json").read_text())
    assert build["config"]["n_small"] == 4
    assert "n_small" not in json.loads((tmp_path / "plain" / "build.json").read_text())["config"]
    for photo in build["photos"].values():
        for rel, info in photo["variants"].items():
            if info["kind"] in S.SMALL_EDITS:
                assert LO <= info["mask_share"] <= HI, rel
                assert (tmp_path / "small" / rel).with_suffix(".mask.png").is_file()


def test_classic_build_from_a_corpus_leaves_its_held_out_photos_out(few_photos: Path, tmp_path: Path,
                                                                    shared_photos: Path) -> None:
    corpus = tmp_path / "corpus"
    source = sorted((shared_photos / "kodak24").glob("*.png"))
    names = {}
    for f in source:  # name copies so that both splits are present, keys relative to the corpus root
        rel = f"open/set/{f.stem}.png"
        names[rel] = split_of(rel)
    train = [r for r, s in names.items() if s == "train"][:2]
    held = [r for r, s in names.items() if s != "train"][:2]
    assert train and held
    for rel in train + held:
        (corpus / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_photos / "kodak24" / Path(rel).name, corpus / rel)
    (corpus / "MANIFEST.csv").write_text("file\n")
    cfg = BuildConfig(seed=1, n_seen=1, n_unseen=0, n_manipulated=1, max_side=128, workers=1, regions="saliency")
    ds = build_dataset(corpus / "open", tmp_path / "out", cfg, progress=False)  # a sub-folder: keys from the root
    assert {Path(p).stem for p in ds.references} == {f"set__{Path(r).stem}" for r in train}
    assert json.loads((tmp_path / "out" / "build.json").read_text())["config"]["split"] == "train"
    split = names[held[0]]  # asked for explicitly, a held-out split is built (a test set, never training data)
    only_held = build_dataset(corpus, tmp_path / "held", BuildConfig(**{**cfg.__dict__, "split": split}),
                              progress=False)
    assert {Path(p).stem for p in only_held.references} == {
        f"open__set__{Path(r).stem}" for r, s in names.items() if s == split and r in held}
