"""Training groups from attribution-dataset folders, and the batch sampler of the paper's §3.5.

A dataset folder (built by ``provenance bench make-dataset``) holds ``pairs.csv`` with the header
``reference,query,relation[,kind][,dataset]`` (paths relative to the folder; relation ``benign`` or ``manipulated``).
Read here with the csv module alone, so the hasher does not depend on the provenance package.

A *group* is one original: its reference image, its benign variants (label ``(origin, 0)``: positives of the
original) and its manipulated variants (label ``(origin, k)``, k >= 1: each its own class, so it is a hard negative
of the original in SimCLR+; see ``hasher.losses.contrastive_labels``).
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from hasher.errors import HasherError


@dataclass(frozen=True)
class Group:
    origin: int
    reference: Path
    benign: tuple[Path, ...]
    manipulated: tuple[Path, ...]


@dataclass(frozen=True)
class Sample:
    path: Path
    origin: int
    variant: int  # 0: the original or a benign copy; k >= 1: the k-th manipulated version


def read_groups(folders: Sequence[str | Path], *, first_origin: int = 0,
                subsets: Sequence[str] | None = None) -> list[Group]:
    """One group per reference image across ``folders`` (origins numbered from ``first_origin``); with ``subsets``,
    only the rows whose ``dataset`` column (the photo's subset, e.g. a licence class) is one of them."""
    groups: dict[Path, tuple[list[Path], list[Path]]] = {}
    for folder in folders:
        root = Path(folder)
        pairs = root / "pairs.csv"
        if not pairs.is_file():
            raise HasherError(f"{root} is not an attribution dataset: no pairs.csv")
        with pairs.open(newline="") as fh:
            for row in csv.DictReader(fh):
                if subsets is not None and row.get("dataset") not in subsets:
                    continue
                ref, query = root / row["reference"], root / row["query"]
                benign, manipulated = groups.setdefault(ref, ([], []))
                if row["relation"] == "benign":
                    benign.append(query)
                elif row["relation"] == "manipulated":
                    manipulated.append(query)
                else:
                    raise HasherError(f"{pairs}: unknown relation {row['relation']!r}")
    return [Group(first_origin + n, ref, tuple(b), tuple(m)) for n, (ref, (b, m)) in enumerate(groups.items())]


def all_paths(groups: Sequence[Group]) -> list[Path]:
    out: dict[Path, None] = {}
    for g in groups:
        out[g.reference] = None
        out.update(dict.fromkeys(g.benign))
        out.update(dict.fromkeys(g.manipulated))
    return list(out)


class GroupBatchSampler:
    """Batches of ``originals`` unique groups; from each, the reference plus ``benign`` benign variants and
    ``manipulated`` manipulated ones (fewer when a group has fewer). Every group with a manipulated variant
    contributes at least one, so every original meets a hard negative in its own batch. Epochs shuffle the groups
    with a seeded generator, so a resumed run can replay the exact order from (seed, step)."""

    def __init__(self, groups: Sequence[Group], *, originals: int, benign: int, manipulated: int, seed: int) -> None:
        if originals < 2:
            raise HasherError("a batch needs at least 2 originals (SimCLR+ negatives)")
        self.groups = list(groups)
        self.originals = min(originals, len(self.groups))
        self.benign = benign
        self.manipulated = max(1, manipulated)
        self.seed = seed

    def batch(self, step: int) -> list[Sample]:
        per_epoch = max(1, len(self.groups) // self.originals)
        epoch, index = divmod(step, per_epoch)
        order = list(range(len(self.groups)))
        random.Random(f"{self.seed}:{epoch}").shuffle(order)
        chosen = order[index * self.originals:(index + 1) * self.originals]
        rng = random.Random(f"{self.seed}:{epoch}:{index}")
        out: list[Sample] = []
        for gi in chosen:
            g = self.groups[gi]
            out.append(Sample(g.reference, g.origin, 0))
            out += [Sample(p, g.origin, 0) for p in rng.sample(g.benign, min(self.benign, len(g.benign)))]
            out += [Sample(g.manipulated[k], g.origin, k + 1) for k in self._pick_manipulated(g, rng)]
        return out

    def _pick_manipulated(self, g: Group, rng: random.Random) -> list[int]:
        """Indices of the manipulated variants drawn from ``g`` (uniformly here; subclasses may weight them)."""
        return rng.sample(range(len(g.manipulated)), min(self.manipulated, len(g.manipulated)))

    def __iter__(self) -> Iterator[list[Sample]]:
        step = 0
        while True:
            yield self.batch(step)
            step += 1
