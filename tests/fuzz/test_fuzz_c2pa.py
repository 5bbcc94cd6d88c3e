"""C2PA reading on mutated real manifests (``../shared/data/c2pa``, the c2pa-rs test fixtures): bytes of the JUMBF
manifest store flipped, overwritten, cut or duplicated, and files truncated. ``read_c2pa`` must never raise for
what is in the bytes (a bad manifest is a finding, reported in the summary), and ``manifest_store_json`` raises
only ``C2paManifestUnreadableError``. Kept cheap: the smaller fixtures (2-16 ms a read)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provenance.c2pa.errors import C2paManifestUnreadableError
from provenance.c2pa.reader import manifest_store_json, read_c2pa
from provenance.c2pa.summary import C2paSummary
from tests.fuzz.conftest import FuzzStats, budget, corpus_files
from tests.fuzz.mutations import mutate_bytes

FIXTURES = ("CA_ct.jpg", "C.jpg", "100kb-signed.png")


def _manifest_span(data: bytes) -> tuple[int, int]:
    """Where the manifest store lies: from the first JUMBF box to the end of the JPEG APP11 segments or PNG caBX
    chunk that carry it (roughly: mutations are biased to fall there)."""
    start = max(0, min((i for i in (data.find(b"jumb"), data.find(b"caBX")) if i >= 0), default=0) - 8)
    end = start
    while True:
        nxt = data.find(b"\xff\xeb", end + 2, end + 70_000) if data[:2] == b"\xff\xd8" else -1
        if nxt < 0:
            break
        end = nxt
    return start, max(end + 2048, start + 4096)


@pytest.fixture(scope="module")
def manifests(shared_data: Path) -> dict[str, bytes]:
    found = {name: (shared_data / "c2pa" / name).read_bytes() for name in FIXTURES
             if (shared_data / "c2pa" / name).is_file()}
    if not found:
        pytest.skip("no C2PA fixtures in ../shared/data/c2pa")
    return found


def _read(data: bytes) -> None:
    summary = read_c2pa(data)
    assert isinstance(summary, C2paSummary)
    summary.to_obj()  # what ingest stores in the record: must serialise
    manifest_store_json(data)


def test_fuzz_c2pa_reading(manifests: dict[str, bytes], fuzz_stats: FuzzStats) -> None:
    spans = {name: _manifest_span(data) for name, data in manifests.items()}

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        name = draw(st.sampled_from(sorted(manifests)))
        data = manifests[name]
        if draw(st.integers(0, 4)) == 0:  # truncated inside the manifest store
            lo, hi = spans[name]
            return data[: draw(st.integers(0, min(hi, len(data))))]
        return mutate_bytes(draw, data, max_ops=3, hot=spans[name])

    @budget(60)
    @given(data=mutated())
    def run(data: bytes) -> None:
        fuzz_stats.run("c2pa", lambda: _read(data), (C2paManifestUnreadableError,), given=data[:64])

    run()
    for path in corpus_files("c2pa"):
        fuzz_stats.run("c2pa", lambda: _read(path.read_bytes()), (C2paManifestUnreadableError,), given=path.name)
