"""The dataset loader: a valid folder loads; each kind of mistake gives a clear DatasetError."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from provenance.bench.dataset import DatasetError, Pair, load_dataset, write_dataset


def _images(root: Path, *rels: str) -> None:
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(root / rel)


def _valid(root: Path) -> None:
    _images(root, "r.png", "q1.jpg", "q2.jpg", "d.jpg")
    write_dataset(root, [Pair("r.png", "q1.jpg", "benign", "seen:flip", "s"),
                         Pair("r.png", "q2.jpg", "manipulated", "splice", "s")], ["d.jpg"])


def test_valid_dataset_loads(tmp_path: Path) -> None:
    _valid(tmp_path)
    ds = load_dataset(tmp_path)
    assert ds.references == ("r.png",) and ds.queries == ("q1.jpg", "q2.jpg") and ds.distractors == ("d.jpg",)
    assert ds.pairs[0].benign and not ds.pairs[1].benign and ds.pairs[1].kind == "splice"


def test_minimal_columns_and_empty_distractors(tmp_path: Path) -> None:
    _images(tmp_path, "r.png", "q.jpg")
    (tmp_path / "pairs.csv").write_text("reference,query,relation\nr.png,q.jpg,benign\n")
    (tmp_path / "distractors.txt").write_text("")
    ds = load_dataset(tmp_path)
    assert ds.pairs[0].kind == "" and ds.distractors == ()


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda r: (r / "pairs.csv").unlink(), "pairs.csv is missing"),
    (lambda r: (r / "distractors.txt").unlink(), "distractors.txt is missing"),
    (lambda r: (r / "pairs.csv").write_text("reference,query\nr.png,q1.jpg\n"), "missing column(s) ['relation']"),
    (lambda r: (r / "pairs.csv").write_text("reference,query,relation\nr.png,q1.jpg,edited\n"),
     "pairs.csv:2: relation 'edited'"),
    (lambda r: (r / "pairs.csv").write_text("reference,query,relation,colour\nr.png,q1.jpg,benign,red\n"),
     "unknown column(s) ['colour']"),
    (lambda r: (r / "pairs.csv").write_text("reference,query,relation\n"), "no pairs"),
    (lambda r: (r / "q2.jpg").unlink(), "do not exist: ['q2.jpg']"),
    (lambda r: (r / "pairs.csv").write_text("reference,query,relation\nr.png,q1.jpg,benign\nd.jpg,q1.jpg,benign\n"),
     "paired with two references"),
    (lambda r: (r / "distractors.txt").write_text("q1.jpg\n"), "both as query and distractor"),
])
def test_errors(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    _valid(tmp_path)
    mutate(tmp_path)
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path)
    assert message in str(info.value)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope")
