"""Proof verification with random and mutated inputs: random indexes and sizes (negative, huge, out of order),
proofs of random length with hashes of random length (or not bytes at all), and real proofs with one thing changed.
Only ``ProofError`` subclasses may come out, and a changed proof must never verify (a changed tree size alone may:
see ``changed_inclusion``)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from provenance.errors import ProofError
from provenance.translog.proofs import root_from_inclusion_proof, verify_consistency, verify_inclusion
from provenance.translog.tree import MemoryMerkleLog
from tests.fuzz.conftest import FuzzStats, budget

LOG = MemoryMerkleLog(f"leaf-{i}".encode() for i in range(70))
sizes = st.one_of(st.integers(-3, 80), st.integers(-(2**70), 2**70), st.sampled_from((0, 1, 2**63, 2**64, 2**64 - 1)))
hashes = st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=40), st.none(), st.text(max_size=4),
                   st.integers(), st.builds(bytearray, st.binary(min_size=32, max_size=32)))
proofs = st.one_of(st.lists(hashes, max_size=12), st.lists(st.binary(min_size=32, max_size=32), max_size=80),
                   st.binary(max_size=64), st.tuples(hashes, hashes))


def test_fuzz_random_proofs(fuzz_stats: FuzzStats) -> None:
    @budget(400)
    @given(index=sizes, size=sizes, leaf=hashes, proof=proofs, root=hashes, size2=sizes)
    def run(index: int, size: int, leaf: Any, proof: Any, root: Any, size2: int) -> None:
        given_ = (index, size, leaf, proof, root, size2)
        fuzz_stats.run("proofs", lambda: verify_inclusion(index, size, leaf, proof, root), (ProofError,),
                       given=given_)
        fuzz_stats.run("proofs", lambda: root_from_inclusion_proof(index, size, leaf, proof), (ProofError,),
                       given=given_)
        fuzz_stats.run("proofs", lambda: verify_consistency(size, size2, proof, leaf, root), (ProofError,),
                       given=given_)

    run()


@st.composite
def changed_inclusion(draw: st.DrawFn) -> tuple[int, int, bytes, list[bytes], bytes, bool | None]:
    size = draw(st.integers(1, LOG.size))
    index = draw(st.integers(0, size - 1))
    proof = LOG.inclusion_proof(index, size)
    leaf, root = LOG.leaf_hash(index), LOG.root(size)
    what = draw(st.sampled_from(("index", "size", "leaf", "root", "hash", "drop", "add", "none")))
    if what == "index":
        index = draw(st.integers(0, 2 * size).filter(lambda i: i != index))
    elif what == "size":
        size = draw(st.integers(0, 2 * LOG.size).filter(lambda s: s != size))
    elif what == "leaf":
        leaf = bytes([leaf[0] ^ 1]) + leaf[1:]
    elif what == "root":
        root = root[:-1] + bytes([root[-1] ^ 0x80])
    elif what == "hash" and proof:
        i = draw(st.integers(0, len(proof) - 1))
        proof[i] = bytes([proof[i][0] ^ 4]) + proof[i][1:]
    elif what == "drop" and proof:
        proof.pop(draw(st.integers(0, len(proof) - 1)))
    elif what == "add":
        proof.insert(draw(st.integers(0, len(proof))), draw(st.binary(min_size=32, max_size=32)))
    else:
        what = "none"
    # A changed size alone may still verify: the proof's shape is all a size decides, and a signed checkpoint binds
    # size and root together (RFC 9162 verifiers behave alike), so only "no crash" is asked of it.
    return index, size, leaf, proof, root, None if what == "size" else what == "none"


def test_fuzz_changed_real_proofs(fuzz_stats: FuzzStats) -> None:
    @budget(300)
    @given(case=changed_inclusion(), size1=st.integers(0, LOG.size), size2=st.integers(0, LOG.size),
           flip=st.integers(-1, 40))
    def run(case: tuple[int, int, bytes, list[bytes], bytes, bool | None], size1: int, size2: int, flip: int) -> None:
        index, size, leaf, proof, root, intact = case
        def attempt() -> bool:
            try:
                verify_inclusion(index, size, leaf, proof, root)
            except ProofError:
                return False
            return True

        verified = fuzz_stats.run("proofs", attempt, given=case)
        # a changed proof that verifies (or an intact one that does not) is a bug too
        if intact is not None and verified != intact:
            fuzz_stats.fail("proofs", f"inclusion verified={verified} intact={intact}", case)
            raise AssertionError(f"inclusion proof {case} verified={verified}, expected {intact}")
        lo, hi = sorted((size1, size2))
        cproof = LOG.consistency_proof(lo, hi) if lo else []
        r1 = LOG.root(lo)
        if 0 <= flip < len(cproof):
            cproof[flip] = bytes(32)
        fuzz_stats.run("proofs", lambda: verify_consistency(lo, hi, cproof, r1, LOG.root(hi)), (ProofError,),
                       given=(lo, hi, flip))

    run()
