"""Hash methods: sizes, the PDQ reference hashes, agreement with hasher.phash64, and the OSCAR hook."""

from __future__ import annotations

import csv
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from provenance.bench import methods as MM

PDQ_ROOT = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "pdq"
#: Max Hamming distance (of 256) to the reference PDQ hashes. Implementations differ by a few bits (JPEG decoders,
#: float order); PDQ's own match threshold is 31. Observed with pdqhash 0.2.8 + Pillow: at most 12 on dihedral
#: transforms, <= 10 elsewhere, mean ~4.
PDQ_TOLERANCE = 16


def _photo() -> Image.Image:
    rng = np.random.default_rng(1)
    base = np.linspace(0, 255, 96 * 64 * 3).reshape(64, 96, 3)
    return Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8))


def test_classical_methods_give_their_bit_counts() -> None:
    methods, skipped = MM.create_methods(None)
    assert skipped == {}
    assert {m.name: m.bits for m in methods} == {"ahash": 64, "dhash": 64, "phash": 64, "whash": 64,
                                                 "colorhash": 64, "iscc": 64, "pdq": 256, "phash-ours": 64}
    img = _photo()
    for m in methods:
        code = m.hash(img)
        assert code.dtype == np.uint8 and code.shape == (m.bits // 8,)
        assert np.array_equal(code, m.hash(img)), m.name


def test_colorhash64_keeps_all_bins() -> None:
    import imagehash

    img = _photo()
    full = imagehash.colorhash(img, binbits=5).hash
    bits = MM.colorhash64_bits(img)
    assert bits.shape == (64,)
    assert np.array_equal(bits[:40], full[:8].ravel()) and np.array_equal(bits[40:], full[8:, :4].ravel())


def test_phash_ours_matches_hasher(tmp_path: Path) -> None:
    from hasher import phash64

    img = _photo()
    path = tmp_path / "x.png"
    img.save(path)
    m = MM.create_methods(["phash-ours"])[0][0]
    assert int.from_bytes(m.hash(path).tobytes(), "big") == phash64(img)
    assert np.array_equal(m.hash(path.read_bytes()), m.hash(path))


def _pdq_expected() -> list[tuple[Path, str]]:
    rows: list[tuple[Path, str]] = []
    for rel, col in (("expected_pdq_python_impl.csv", "pdq_hash_hex"),
                     ("wasm/test/TestData/PDQMD5TestData.csv", "Hash")):
        with (PDQ_ROOT / rel).open(newline="") as fh:
            for r in csv.DictReader(fh):
                name = r.get("path_relative_to_pdq_data") or r["FilePath"].replace("../../../../data/", "")
                path = PDQ_ROOT / "data" / name
                if path.is_file() and len(r[col]) == 64:
                    rows.append((path, r[col]))
    return rows


@pytest.mark.skipif(not PDQ_ROOT.is_dir(), reason=f"PDQ reference data not found at {PDQ_ROOT}")
def test_pdq_matches_reference_hashes() -> None:
    expected = _pdq_expected()
    assert len(expected) >= 25
    m = MM.create_methods(["pdq"])[0][0]
    dists = []
    for path, hexhash in expected:
        ours = int.from_bytes(m.hash(path).tobytes(), "big")
        dists.append((ours ^ int(hexhash, 16)).bit_count())
    assert max(dists) <= PDQ_TOLERANCE, list(zip([p.name for p, _ in expected], dists, strict=True))
    assert np.mean(dists) <= 8


def test_model_output_forms() -> None:
    ints = [0x8000000000000001, 3]
    packed = MM.codes_from_model_output(ints, 2, 64)
    assert packed[0].tobytes().hex() == "8000000000000001"
    objs = [types.SimpleNamespace(value=v) for v in ints]
    assert np.array_equal(MM.codes_from_model_output(objs, 2, 64), packed)
    bits = np.unpackbits(packed, axis=1).astype(bool)
    assert np.array_equal(MM.codes_from_model_output(bits, 2, 64), packed)
    assert np.array_equal(MM.codes_from_model_output(packed, 2, 64), packed)
    with pytest.raises(ValueError):
        MM.codes_from_model_output(np.zeros((2, 5)), 2, 64)


class _FakeHasher:
    model_id = "fake-oscar-1"
    bits = 64

    def hash_batch(self, images: list[Image.Image]) -> list[int]:
        return [int(np.asarray(im).mean() * 1000) for im in images]


def test_oscar_hook_registers_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("hasher")
    fake.load = lambda **kw: _FakeHasher()  # type: ignore[attr-defined]
    fake.OSCAR_VARIANTS = {"no-rel": {}}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hasher", fake)
    assert {"oscar", "oscar-no-rel"} <= set(MM.available_methods())
    methods, skipped = MM.create_methods(["oscar", "oscar-no-rel", "ahash"])
    assert skipped == {} and [m.name for m in methods] == ["oscar", "oscar-no-rel", "ahash"]
    assert methods[0].model_id == "fake-oscar-1" and methods[0].hash(_photo()).shape == (8,)
    assert "oscar" not in [m.name for m in MM.create_methods(None)[0]]  # models are opt-in


def test_missing_or_failing_model_never_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    bare = types.ModuleType("hasher")
    monkeypatch.setitem(sys.modules, "hasher", bare)
    methods, skipped = MM.create_methods(["oscar", "ahash"])
    assert [m.name for m in methods] == ["ahash"] and "unknown method" in skipped["oscar"]

    def boom(**kw: object) -> None:
        raise FileNotFoundError("no weights")

    broken = types.ModuleType("hasher")
    broken.load = boom  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hasher", broken)
    methods, skipped = MM.create_methods(["oscar", "dhash"])
    assert [m.name for m in methods] == ["dhash"] and "no weights" in skipped["oscar"]
