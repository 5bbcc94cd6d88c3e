"""The global identity code (``hasher.global_id``): the whitening fit on plain values, the shipped weights on real
photos (benign copies stay close, other photos stay far, a mirror image is the same code), and bad weight files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hasher.borders import inner_box
from hasher.errors import BackboneWeightsError, WeightsIntegrityError
from hasher.global_id import DEFAULT_WEIGHTS, fit_projection, load_global_id


def _codes(descs: np.ndarray, mean: np.ndarray, proj: np.ndarray) -> np.ndarray:
    return ((descs - mean) @ proj.T) > 0


def test_the_fit_whitens_away_what_varies_within_a_photo() -> None:
    rng = np.random.default_rng(1)
    dim, photos, variants = 32, 60, 4
    # photos differ along dims 8..31; variants of one photo differ a lot along dims 0..7 and a little elsewhere
    base = np.zeros((photos, dim))
    base[:, 8:] = rng.standard_normal((photos, dim - 8))
    descs, pairs = [], []
    for i in range(photos):
        ref = len(descs)
        descs.append(base[i])
        for _ in range(variants):
            v = base[i].copy()
            v[:8] += 3.0 * rng.standard_normal(8)
            v[8:] += 0.05 * rng.standard_normal(dim - 8)
            pairs.append((len(descs), ref))
            descs.append(v)
    d, p = np.array(descs), np.array(pairs)
    mean, proj = fit_projection(d, p, 16, seed=0)
    assert proj.shape == (16, dim) and mean.shape == (dim,)
    codes = _codes(d, mean, proj)
    within = np.mean([(codes[a] != codes[b]).sum() for a, b in p])
    # plain SimHash of the centred descriptors for comparison: the within-photo directions flip its bits
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((dim, 16)))
    plain = _codes(d, d.mean(0), q.T)
    within_plain = np.mean([(plain[a] != plain[b]).sum() for a, b in p])
    assert within < 1.0 < within_plain
    refs = codes[[b for _, b in p[::variants]]]
    between = np.mean([(refs[i] != refs[j]).sum() for i in range(len(refs)) for j in range(i)])
    assert between > 6.0  # different photos still differ in about half their 16 bits


def test_the_fit_is_reproducible_from_its_seed_and_checks_its_input() -> None:
    rng = np.random.default_rng(0)
    d = rng.standard_normal((40, 24))
    p = np.array([(i, i + 1) for i in range(0, 40, 2)])
    a, b = fit_projection(d, p, 8, seed=3), fit_projection(d, p, 8, seed=3)
    assert np.array_equal(a[1], b[1]) and not np.array_equal(a[1], fit_projection(d, p, 8, seed=4)[1])
    with pytest.raises(ValueError, match="multiple of 8"):
        fit_projection(d, p, 12, seed=0)
    with pytest.raises(ValueError, match="pair"):
        fit_projection(d, np.zeros((0, 2), dtype=int), 8, seed=0)
    with pytest.raises(ValueError, match="two descriptors"):
        fit_projection(d[:1], p, 8, seed=0)
    with pytest.raises(ValueError, match="more than 16 descriptors"):
        fit_projection(d[:10], p[:2], 16, seed=0)


def _jpeg(im: Image.Image, quality: int = 80) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _reshare(im: Image.Image) -> bytes:
    """Rotated 8 degrees, shrunk to 60 %, padded with a grey border, JPEG 70: beyond pHash's reach."""
    rotated = im.rotate(8, resample=Image.BILINEAR, expand=True)
    small = rotated.resize((int(rotated.width * 0.6), int(rotated.height * 0.6)), Image.BILINEAR)
    canvas = Image.new("RGB", (small.width + 60, small.height + 40), (128, 128, 128))
    canvas.paste(small, (30, 20))
    return _jpeg(canvas, 70)


@pytest.fixture(scope="module")
def gid():
    return load_global_id()


def test_the_shipped_code_keeps_copies_close_and_other_photos_far(gid, shared_photos: Path) -> None:
    names = ["kodak24/kodim03.png", "kodak24/kodim15.png", "kodak24/kodim20.png", "skimage/astronaut.png"]
    photos = [Image.open(shared_photos / n).convert("RGB") for n in names]
    codes = [gid.code(_jpeg(p, 95)) for p in photos]
    assert all(c.bits == 256 and len(c.hex) == 64 and c.model_id.startswith("global-id-v1-") for c in codes)
    assert gid.identity_gate == 112  # calibrated on the validation split, shipped in the file
    copies = [gid.code(_reshare(p)) for p in photos]
    same = [(a.value ^ b.value).bit_count() for a, b in zip(codes, copies)]
    other = [(codes[i].value ^ copies[j].value).bit_count() for i in range(4) for j in range(4) if i != j]
    assert max(same) < min(other), (same, other)
    assert max(same) <= 70 and min(other) >= 80, (same, other)


def test_a_mirror_image_has_the_same_code(gid, shared_photos: Path) -> None:
    im = Image.open(shared_photos / "kodak24/kodim20.png").convert("RGB")
    a = gid.code(_jpeg(im, 95))
    b = gid.code(_jpeg(im.transpose(Image.FLIP_LEFT_RIGHT), 95))
    assert (a.value ^ b.value).bit_count() <= 6


def test_uniform_padding_is_trimmed_before_hashing() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    padded = np.full((160, 220, 3), 30, dtype=np.uint8)
    padded[20:140, 30:190] = rgb
    assert inner_box(padded) == (30, 20, 190, 140)
    assert inner_box(np.full((30, 30, 3), 7, np.uint8)) == (0, 0, 30, 30)  # too little would remain: keep it all


def test_bad_weight_files_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(BackboneWeightsError, match="not found"):
        load_global_id(tmp_path / "missing.safetensors")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(DEFAULT_WEIGHTS.read_bytes()[:1000])
    with pytest.raises(WeightsIntegrityError, match="cannot read"):
        load_global_id(broken)
    from safetensors.numpy import save_file

    bare = tmp_path / "bare.safetensors"  # readable tensors, but no settings
    save_file({"mean": np.zeros(1280, np.float32), "projection": np.zeros((256, 1280), np.float32)}, str(bare))
    with pytest.raises(WeightsIntegrityError, match="settings"):
        load_global_id(bare)
    wrong = tmp_path / "wrong.safetensors"  # settings, but tensors of another backbone's width
    save_file({"mean": np.zeros(512, np.float32), "projection": np.zeros((256, 512), np.float32)}, str(wrong),
              metadata={"settings": '{"name": "x", "side": 224, "gem_p": 3.0}'})
    with pytest.raises(BackboneWeightsError, match="do not fit"):
        load_global_id(wrong)
    ungated = tmp_path / "ungated.safetensors"  # a file without a gate: lookup then verifies every candidate
    save_file({"mean": np.zeros(1280, np.float32), "projection": np.zeros((256, 1280), np.float32)}, str(ungated),
              metadata={"settings": '{"name": "x", "side": 224, "gem_p": 3.0}'})
    assert load_global_id(ungated).identity_gate is None


def test_the_fit_command_writes_a_loadable_weights_file(tmp_path: Path, shared_photos: Path) -> None:
    from hasher.global_id import main

    rows = ["reference,query,relation,kind"]
    for name in ("kodim03", "kodim15", "kodim20"):
        im = Image.open(shared_photos / f"kodak24/{name}.png").convert("RGB")
        im.save(tmp_path / f"{name}.png")
        for i, quality in enumerate((60, 85)):
            (tmp_path / f"{name}-{i}.jpg").write_bytes(_jpeg(im.resize((im.width // 2, im.height // 2)), quality))
            rows.append(f"{name}.png,{name}-{i}.jpg,benign,jpeg")
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "gid.safetensors"
    assert main(["fit", "--dataset", str(tmp_path), "--out", str(out), "--bits", "8", "--name", "gid-test",
                 "--identity-gate", "3"]) == 0
    gid = load_global_id(out)
    code = gid.code(tmp_path / "kodim03-0.jpg")
    assert gid.bits == 8 and code.bits == 8 and len(code.hex) == 2 and gid.model_id.startswith("gid-test-")
    assert gid.identity_gate == 3
    with pytest.raises(SystemExit, match="no rows"):
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "pairs.csv").write_text("reference,query\n")
        main(["fit", "--dataset", str(tmp_path / "empty"), "--out", str(out)])
