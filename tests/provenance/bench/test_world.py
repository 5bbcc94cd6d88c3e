"""The world recipe of make-dataset (issue 13): the fixed hold-out split, benign copies as platforms make them, edits
aimed at size buckets, several reference sizes, and a reproducible build with every variant's facts recorded."""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from provenance.bench import manipulations as M
from provenance.bench import platform as P
from provenance.bench.make_dataset import BuildConfig, build_dataset
from provenance.bench.splits import CALIBRATION, TEST, TRAIN, is_held_out, split_of
from provenance.bench.world import EDIT_BUCKETS, THUMBNAIL_BUCKETS, bucket_of, reference_sizes, variant_facts


def test_the_split_is_a_fixed_function_of_the_path_holding_out_a_fifth():
    paths = [f"open/source-{i // 50}/photo-{i:05d}.jpg" for i in range(20000)]
    splits = Counter(split_of(p) for p in paths)
    assert abs(splits[CALIBRATION] / 20000 - 0.1) < 0.01 and abs(splits[TEST] / 20000 - 0.1) < 0.01
    assert splits[TRAIN] + splits[CALIBRATION] + splits[TEST] == 20000
    assert [split_of(p) for p in reversed(paths)] == [split_of(p) for p in paths][::-1]  # order does not matter
    assert split_of("a/b.jpg") == split_of("a\\b.jpg")  # the same photo, however the path is spelled
    assert all(is_held_out(p) == (split_of(p) != TRAIN) for p in paths[:500])
    with pytest.raises(ValueError, match="relative"):
        split_of("/abs/path.jpg")


def test_edit_buckets_are_labelled_by_the_share_actually_changed():
    assert [bucket_of(s) for s in (0.005, 0.0099, 0.01, 0.019, 0.02, 0.049, 0.05, 0.099, 0.10, 0.3)] == \
        ["<1%", "<1%", "1-2%", "1-2%", "2-5%", "2-5%", "5-10%", "5-10%", ">=10%", ">=10%"]
    assert reference_sizes((512, 340), (0, 384, 256)) == [512, 384, 256]
    assert reference_sizes((299, 299), (0, 384, 256)) == [299, 256]  # never enlarged


@pytest.fixture(scope="module")
def photo(shared_photos: Path) -> Image.Image:
    with Image.open(shared_photos / "kodak24" / "kodim23.png") as im:
        return im.convert("RGB").resize((384, 256), Image.Resampling.LANCZOS)


@pytest.mark.parametrize("kind", sorted(P.KINDS))
def test_every_platform_copy_is_reproducible_and_decodes_as_what_it_claims(photo: Image.Image, kind: str):
    img, enc, info = P.KINDS[kind](photo, np.random.default_rng(5))
    again, enc2, _ = P.KINDS[kind](photo, np.random.default_rng(5))
    data = P.encode(img, enc)
    assert data == P.encode(again, enc2)
    assert max(img.size) >= P.MIN_COPY_SIDE
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.format == enc.format and decoded.size == img.size
        if enc.format == "JPEG":
            assert JpegImagePlugin.get_sampling(decoded) == 2  # 4:2:0 chroma, as platforms encode
    assert isinstance(info, dict)


def test_blurs_stay_mild_and_crops_keep_most_of_the_picture(photo: Image.Image):
    for seed in range(20):
        rng = np.random.default_rng(seed)
        assert P.gaussian_blur(photo, rng)[2]["sigma"] <= 1.5
        assert P.defocus_blur(photo, np.random.default_rng(seed))[2]["radius"] <= 3.0  # sigma = r / 2 <= 1.5
        assert 0.6 <= P.crop(photo, np.random.default_rng(seed))[2]["kept"] <= 0.96
        assert abs(P.rotate_crop(photo, np.random.default_rng(seed))[2]["angle"]) <= 5.0


@pytest.mark.parametrize("edit", ["copy_move", "copy_move_blend", "recolour", "splice", "object_removal",
                                  "text_insertion"])
def test_edits_aim_at_the_size_asked_for(photo: Image.Image, edit: str, shared_photos: Path):
    ctx = M.EditContext(regions=((150, 40, 330, 230),), donors=(str(shared_photos / "kodak24" / "kodim05.png"),),
                        area=(0.01, 0.02))
    shares = []
    for seed in range(6):
        out, mask, _ = {**M.EDITS, **M.EXTRA_EDITS}[edit](np.asarray(photo), np.random.default_rng(seed), ctx)
        shares.append(mask.mean())
        assert (out != np.asarray(photo)).any(axis=2)[~mask].sum() == 0  # nothing changes outside the mask
    assert 0.005 <= np.median(shares) <= 0.03, shares


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_world_build_is_reproducible_with_every_size_copy_and_bucketed_edit(few_photos: Path, tmp_path: Path):
    cfg = BuildConfig(seed=2, n_manipulated=5, max_side=512, workers=1, regions="saliency", recipe="world",
                      sizes=(0, 256), n_copies=4)
    ds = build_dataset(few_photos, tmp_path / "a", cfg, progress=False)
    build_dataset(few_photos, tmp_path / "b", BuildConfig(**{**cfg.__dict__, "workers": 2}), progress=False)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    sides = sorted(Image.open(ds.path(r)).size for r in ds.references)
    assert len(ds.references) == 6 and sum(max(s) == 256 for s in sides) == 3  # each photo stored and at 256 px
    benign = [p for p in ds.pairs if p.benign]
    edits = [p for p in ds.pairs if not p.benign]
    assert len(benign) == 6 * 4 and len(edits) == 6 * 5
    assert all(p.kind.removeprefix("world:") in P.KINDS for p in benign)
    facts = variant_facts(tmp_path / "a")
    assert set(facts) == set(ds.queries)
    for p in edits:
        f = facts[p.query]
        lo, hi = f["target_share"]
        assert [lo, hi] in [list(b) for b in EDIT_BUCKETS] and f["edit_bucket"] == bucket_of(f["mask_share"])
        with Image.open(ds.path(p.query).with_name(Path(p.query).stem + ".mask.png")) as m:
            assert np.asarray(m).any()
    assert {tuple(facts[p.query]["target_share"]) for p in edits} == set(EDIT_BUCKETS)  # every bucket is aimed at
    assert {facts[q]["reference_side"] for q in facts} == {256, 451, 500, 512}  # as stored: chelsea 451, kodim23 500


def test_thumbnailed_edits_are_small_edits_shown_small_and_leave_every_other_variant_alone(few_photos: Path,
                                                                                            tmp_path: Path):
    """``n_thumbnailed``: edits of the three smallest buckets, then downscaled to 30-65 % (never under 128 px); the
    variants a build makes without them keep their bytes, so earlier datasets and their figures stand."""
    cfg = BuildConfig(seed=2, n_manipulated=2, max_side=512, workers=1, regions="saliency", recipe="world",
                      sizes=(0, 256), n_copies=2)
    build_dataset(few_photos, tmp_path / "plain", cfg, progress=False)
    ds = build_dataset(few_photos, tmp_path / "thumbs", BuildConfig(**{**cfg.__dict__, "n_thumbnailed": 3}),
                       progress=False)
    plain, thumbs = _digests(tmp_path / "plain"), _digests(tmp_path / "thumbs")
    listed = {"build.json", "pairs.csv", "dataset.json", "references.txt", "queries.txt"}
    assert {k: v for k, v in plain.items() if Path(k).name not in listed} == \
        {k: thumbs[k] for k in plain if Path(k).name not in listed}
    facts = variant_facts(tmp_path / "thumbs")
    shown = [p for p in ds.pairs if Path(p.query).name.startswith("t")]
    assert len(shown) == 6 * 3 and all(not p.benign for p in shown)
    for p in shown:
        f = facts[p.query]
        assert tuple(f["target_share"]) in THUMBNAIL_BUCKETS and f["edit_bucket"] == bucket_of(f["mask_share"])
        with Image.open(ds.path(p.query)) as q, Image.open(ds.path(p.reference)) as r:
            assert max(q.size) >= P.MIN_COPY_SIDE and max(q.size) < max(r.size)
            scale = q.width / r.width
            assert f["thumbnail_scale"] == pytest.approx(scale, abs=2e-3)
            assert P.THUMBNAIL_SCALES[0] - 0.01 <= scale <= P.THUMBNAIL_SCALES[1] + 0.01 or \
                max(q.size) == P.MIN_COPY_SIDE
            with Image.open(ds.path(p.query).with_name(Path(p.query).stem + ".mask.png")) as m:
                assert m.size == q.size and np.asarray(m).any()
    assert {tuple(facts[p.query]["target_share"]) for p in shown} == set(THUMBNAIL_BUCKETS)
    assert len({facts[p.query]["kind"] for p in shown if p.reference == shown[0].reference}) == 3  # distinct kinds


def test_unrelated_photos_need_a_held_out_split(few_photos: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="held-out split"):
        build_dataset(few_photos, tmp_path / "x", BuildConfig(recipe="world", n_unrelated=2, workers=1,
                                                              regions="saliency"), progress=False)
    with pytest.raises(ValueError, match="unknown recipe"):
        build_dataset(few_photos, tmp_path / "y", BuildConfig(recipe="nope", workers=1), progress=False)
