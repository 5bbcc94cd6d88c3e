"""The conformance vectors (hasher/conformance): the documented 50 inputs, reproduced bit for bit on CPU (and within
the model's threshold on a GPU, when there is one), and the comparison that a third party's check relies on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hasher.conformance import (
    VECTORS,
    ModelSpec,
    compare,
    compute,
    flipped_bits,
    load_vectors,
    read_codes,
    selected_paths,
    sha256_bytes,
    shipped_models,
)
from hasher.conformance.__main__ import main


@pytest.fixture(scope="module")
def vectors() -> dict:
    return load_vectors(VECTORS)


@pytest.fixture(scope="module")
def shared_data(shared_photos: Path) -> Path:
    return shared_photos.parent


def test_vectors_name_the_documented_inputs_by_path_and_digest(vectors: dict, shared_data: Path) -> None:
    paths = [r["path"] for r in vectors["images"]]
    assert paths == selected_paths(shared_data) and len(paths) == 50 == len(set(paths))
    for row in vectors["images"]:
        raw = (shared_data / row["path"]).read_bytes()
        assert sha256_bytes(raw) == row["sha256"] and len(raw) == row["bytes"], row["path"]
    # every shipped model is in the file (a new oscar_*.safetensors must come with regenerated vectors)
    assert {m.model_id for m in shipped_models()} == {m["model_id"] for m in vectors["models"]}
    defaults = [m for m in vectors["models"] if m["alg"] == "oscar-net" and m["default"]]
    assert len(defaults) == 1
    for row in vectors["images"]:
        assert set(row["codes"]) == {m["model_id"] for m in vectors["models"]}
        for m in vectors["models"]:
            assert len(row["codes"][m["model_id"]]) == m["bits"] // 4


def test_cpu_reproduces_every_vector_bit_for_bit(vectors: dict, shared_data: Path) -> None:
    specs = [ModelSpec.from_obj(m) for m in vectors["models"]]
    got = compute(shared_data, [r["path"] for r in vectors["images"]], specs, device="cpu")
    diffs = compare(vectors, {p: {m: c.hex for m, c in codes.items()} for p, codes in got.items()})
    assert len(diffs) == 50 * len(specs)
    assert [(d.path, d.model_id, d.bits) for d in diffs if d.bits != 0] == []
    # the margins and fragile bits written in the file are what the models give
    for row in vectors["images"]:
        for mid, margin in row["margins"].items():
            # margins are float32 sums whose last digits follow the CPU's vector width (up to 5.5e-6 apart between
            # two x86 machines, every bit the same); the bits are the conformance, the margins a guide to them
            assert got[row["path"]][mid].margin == pytest.approx(margin, abs=2e-5)
            assert list(got[row["path"]][mid].fragile) == row["fragile_bits"][mid]


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA device here")
def test_gpu_codes_stay_within_each_models_threshold(vectors: dict, shared_data: Path, capsys) -> None:
    """On a GPU images are batched and kernels differ, so bits may flip; a GPU-hashed record must still match a
    CPU-hashed query: every difference stays within the model's calibrated threshold. The counts are printed."""
    import hasher

    specs = [ModelSpec.from_obj(m) for m in vectors["models"]]
    got = compute(shared_data, [r["path"] for r in vectors["images"]], specs, device="cuda", margins=False)
    diffs = compare(vectors, {p: {m: c.hex for m, c in codes.items()} for p, codes in got.items()})
    for mid in {d.model_id for d in diffs}:
        bits = [d.bits for d in diffs if d.model_id == mid]
        print(f"GPU vs CPU {mid}: {sum(1 for b in bits if b)} of {len(bits)} images differ, max {max(bits)} bits")
    threshold = hasher.load(device="cpu").threshold
    assert all(d.bits is not None and d.bits <= threshold for d in diffs)


def test_compare_counts_flipped_bits_and_names_bad_inputs() -> None:
    vectors = {"images": [
        {"path": "a.png", "codes": {"m": "00ff"}, "fragile_bits": {"m": [0]}},
        {"path": "b.png", "codes": {"m": "0000"}, "fragile_bits": {"m": []}},
        {"path": "c.png", "codes": {"m": "1234"}},
    ]}
    assert flipped_bits("00ff", "80fe") == (0, 15)
    diffs = compare(vectors, {"a.png": {"m": "80FF"}, "b.png": {"m": "000"}}, bad_inputs={"c.png": "missing"})
    a, b, c = diffs
    assert (a.bits, a.flipped, a.only_fragile) == (1, (0,), True)
    assert b.bits is None and "12-bit" in b.note
    assert c.bits is None and c.note == "missing"
    assert compare(vectors, {}, models=["other"]) == []


def test_check_command_on_a_third_partys_codes(vectors: dict, shared_data: Path, tmp_path: Path, capsys) -> None:
    rows = [{"path": r["path"], "model_id": mid, "hex": code} for r in vectors["images"]
            for mid, code in r["codes"].items()]
    good = tmp_path / "codes.jsonl"
    good.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert read_codes(good)[rows[0]["path"]][rows[0]["model_id"]] == rows[0]["hex"]
    assert main(["--data", str(shared_data), "check", "--codes", str(good)]) == 0
    assert f"{len(rows)} codes compared" in capsys.readouterr().out

    bad = tmp_path / "codes.csv"
    first = rows[0]
    flipped = f"{int(first['hex'], 16) ^ 0b101:0{len(first['hex'])}x}"
    bad.write_text("path,model_id,hex\n" + "".join(
        f"{r['path']},{r['model_id']},{flipped if r is first else r['hex']}\n" for r in rows))
    assert main(["--data", str(shared_data), "check", "--codes", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{first['path']}" in out and " 2 bits differ" in out
    assert main(["--data", str(shared_data), "check", "--codes", str(bad), "--max-bits", "2"]) == 0
    capsys.readouterr()

    (tmp_path / "data").mkdir()  # inputs missing: exit 2, each named
    assert main(["--data", str(tmp_path / "data"), "check", "--codes", str(good), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["compared"] == 0 and all(r["note"].startswith("missing") for r in report["results"])
