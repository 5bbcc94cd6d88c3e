"""The attribution dataset format, and its loader.

A dataset is a folder holding ``pairs.csv`` (header ``reference,query,relation[,kind][,dataset]``) and
``distractors.txt`` (one relative image path per line, may be empty). Paths are relative to the folder so a dataset
can be moved or archived whole. The loader checks everything up front, so a benchmark run never fails halfway
because of a typo in row 3000.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

RELATIONS = ("benign", "manipulated")
REQUIRED_COLUMNS = ("reference", "query", "relation")
OPTIONAL_COLUMNS = ("kind", "dataset")
PAIRS_FILE = "pairs.csv"
DISTRACTORS_FILE = "distractors.txt"


class DatasetError(ValueError):
    """The dataset folder is missing a file, a column, an image, or holds a bad value (the message says which)."""


@dataclass(frozen=True)
class Pair:
    """One (reference, query) row. ``kind`` names the transform/edit; ``dataset`` the subset (both may be '')."""

    reference: str
    query: str
    relation: str
    kind: str = ""
    dataset: str = ""

    @property
    def benign(self) -> bool:
        return self.relation == "benign"


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset: ``root`` plus rows and distractors, with stable orderings the metrics index into."""

    root: Path
    pairs: tuple[Pair, ...]
    distractors: tuple[str, ...]
    references: tuple[str, ...] = field(init=False)
    queries: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        # First-appearance order: deterministic, and the same for every method (so tie-breaking keys line up).
        object.__setattr__(self, "references", tuple(dict.fromkeys(p.reference for p in self.pairs)))
        object.__setattr__(self, "queries", tuple(dict.fromkeys(p.query for p in self.pairs)))

    @property
    def name(self) -> str:
        return self.root.name

    def path(self, rel: str) -> Path:
        return self.root / rel

    def all_images(self) -> tuple[str, ...]:
        """Every image the benchmark hashes, each once: references, queries, distractors."""
        return tuple(dict.fromkeys((*self.references, *self.queries, *self.distractors)))


def load_dataset(root: str | Path, *, check_files: bool = True) -> Dataset:
    """Read and validate a dataset folder; raise :class:`DatasetError` with the file and line at fault."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    pairs_path = root / PAIRS_FILE
    if not pairs_path.is_file():
        raise DatasetError(f"{pairs_path} is missing (a dataset needs {PAIRS_FILE} and {DISTRACTORS_FILE})")
    distractors_path = root / DISTRACTORS_FILE
    if not distractors_path.is_file():
        raise DatasetError(f"{distractors_path} is missing (it may be empty, but it must exist)")

    pairs = _read_pairs(pairs_path)
    distractors = tuple(line.strip() for line in distractors_path.read_text(encoding="utf-8").splitlines()
                        if line.strip())
    dataset = Dataset(root, pairs, distractors)
    _check_consistency(dataset)
    if check_files:
        missing = [rel for rel in dataset.all_images() if not (root / rel).is_file()]
        if missing:
            more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
            raise DatasetError(f"{len(missing)} image(s) listed in {root} do not exist: {missing[:5]}{more}")
    return dataset


def _read_pairs(path: Path) -> tuple[Pair, ...]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DatasetError(f"{path}: missing column(s) {missing}; header is {header}, "
                               f"expected reference,query,relation[,kind][,dataset]")
        unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
        if unknown:
            raise DatasetError(f"{path}: unknown column(s) {unknown}")
        pairs: list[Pair] = []
        for lineno, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            if not row["reference"] or not row["query"]:
                raise DatasetError(f"{path}:{lineno}: empty reference or query")
            if row["relation"] not in RELATIONS:
                raise DatasetError(f"{path}:{lineno}: relation {row['relation']!r} is not one of {RELATIONS}")
            pairs.append(Pair(row["reference"], row["query"], row["relation"], row.get("kind", ""),
                              row.get("dataset", "")))
    if not pairs:
        raise DatasetError(f"{path}: no pairs")
    return tuple(pairs)


def _check_consistency(dataset: Dataset) -> None:
    """Each query belongs to exactly one reference, and no image plays two roles (that would make metrics lie)."""
    owner: dict[str, str] = {}
    for p in dataset.pairs:
        if owner.setdefault(p.query, p.reference) != p.reference:
            raise DatasetError(f"query {p.query!r} is paired with two references ({owner[p.query]!r}, {p.reference!r})")
    refs, queries, distr = set(dataset.references), set(dataset.queries), set(dataset.distractors)
    for a, b, what in ((refs, queries, "reference and query"), (refs, distr, "reference and distractor"),
                       (queries, distr, "query and distractor")):
        both = sorted(a & b)
        if both:
            raise DatasetError(f"{both[:3]} listed both as {what}")
    if len(set(dataset.distractors)) != len(dataset.distractors):
        raise DatasetError("distractors.txt lists an image twice")


def write_dataset(root: str | Path, pairs: list[Pair], distractors: list[str]) -> None:
    """Write ``pairs.csv`` (with kind and dataset columns) and ``distractors.txt`` into ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with (root / PAIRS_FILE).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
        for p in pairs:
            writer.writerow((p.reference, p.query, p.relation, p.kind, p.dataset))
    (root / DISTRACTORS_FILE).write_text("".join(f"{d}\n" for d in distractors), encoding="utf-8")
