"""Published RFC 6962 test vectors.

The reference tree of 8 leaves, its roots at sizes 1..8, and the inclusion/consistency proofs over it come from the
Certificate Transparency reference test data as carried by transparency-dev/merkle, file ``proof/verify_test.go``
(commit 02194e9afb6c1d95b5381350007963aa70fff472): variables ``leaves``, ``roots``, ``inclusionProofs`` (there
1-based leaf numbers; converted to 0-based indices here) and ``consistencyProofs``.

The node-ID shapes (which perfect subtrees make up each proof hash) come from transparency-dev/merkle
``proof/proof_test.go`` (commit 02a3e2029520f515596d5238c54fb0ac9e19bff4), ``TestInclusion`` and ``TestConsistency``;
a ``rehash(begin, end, ...)`` group there is one composed hash (a tiling of several perfect nodes) here.
"""

from __future__ import annotations

LEAVES: list[bytes] = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]

# ROOTS[n - 1] is the root of the tree of the first n leaves.
ROOTS: list[bytes] = [
    bytes.fromhex(h)
    for h in [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]

EMPTY_TREE_HASH = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _hashes(*hexes: str) -> list[bytes]:
    return [bytes.fromhex(h) for h in hexes]


# (index, size, proof); index is 0-based.
INCLUSION_PROOFS: list[tuple[int, int, list[bytes]]] = [
    (0, 1, []),
    (
        0,
        8,
        _hashes(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        5,
        8,
        _hashes(
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (2, 3, _hashes("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (
        1,
        5,
        _hashes(
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
]

# (size1, size2, proof)
CONSISTENCY_PROOFS: list[tuple[int, int, list[bytes]]] = [
    (1, 1, []),
    (
        1,
        8,
        _hashes(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        6,
        8,
        _hashes(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (
        2,
        5,
        _hashes(
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (
        6,
        7,
        _hashes(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
]

Tiling = set[tuple[int, int]]


def _shape(*groups: tuple[tuple[int, int], ...] | tuple[int, int]) -> list[Tiling]:
    """Each argument is one proof hash: a single (level, index) node, or a tuple of nodes composed together."""
    out: list[Tiling] = []
    for g in groups:
        if isinstance(g[0], tuple):
            out.append(set(g))  # type: ignore[arg-type]
        else:
            out.append({g})  # type: ignore[arg-type]
    return out


# (index, size, shape) from TestInclusion.
INCLUSION_SHAPES: list[tuple[int, int, list[Tiling]]] = [
    (0, 1, []),
    (0, 2, _shape((0, 1))),
    (1, 2, _shape((0, 0))),
    (1, 3, _shape((0, 0), (0, 2))),
    (0, 7, _shape((0, 1), (1, 1), ((0, 6), (1, 2)))),
    (1, 7, _shape((0, 0), (1, 1), ((0, 6), (1, 2)))),
    (2, 7, _shape((0, 3), (1, 0), ((0, 6), (1, 2)))),
    (3, 7, _shape((0, 2), (1, 0), ((0, 6), (1, 2)))),
    (4, 7, _shape((0, 5), (0, 6), (2, 0))),
    (5, 7, _shape((0, 4), (0, 6), (2, 0))),
    (6, 7, _shape((1, 2), (2, 0))),
    (2, 4, _shape((0, 3), (1, 0))),
    (3, 5, _shape((0, 2), (1, 0), (0, 4))),
    (3, 6, _shape((0, 2), (1, 0), (1, 2))),
    (4, 6, _shape((0, 5), (2, 0))),
    (10, 15, _shape((0, 11), (1, 4), ((0, 14), (1, 6)), (3, 0))),
    (24, 31, _shape((0, 25), (1, 13), ((0, 30), (1, 14)), (3, 2), (4, 0))),
    (81, 95, _shape((0, 80), (1, 41), (2, 21), ((0, 94), (1, 46), (2, 22)), (4, 4), (6, 0))),
]

# (size1, size2, shape) from TestConsistency.
CONSISTENCY_SHAPES: list[tuple[int, int, list[Tiling]]] = [
    (1, 2, _shape((0, 1))),
    (1, 4, _shape((0, 1), (1, 1))),
    (1, 6, _shape((0, 1), (1, 1), (1, 2))),
    (2, 3, _shape((0, 2))),
    (2, 8, _shape((1, 1), (2, 1))),
    (3, 7, _shape((0, 2), (0, 3), (1, 0), ((0, 6), (1, 2)))),
    (4, 7, _shape(((0, 6), (1, 2)))),
    (5, 7, _shape((0, 4), (0, 5), (0, 6), (2, 0))),
    (6, 7, _shape((1, 2), (0, 6), (2, 0))),
    (7, 8, _shape((0, 6), (0, 7), (1, 2), (2, 0))),
    (2, 4, _shape((1, 1))),
    (3, 5, _shape((0, 2), (0, 3), (1, 0), (0, 4))),
    (3, 6, _shape((0, 2), (0, 3), (1, 0), (1, 2))),
    (4, 6, _shape((1, 2))),
    (1, 7, _shape((0, 1), (1, 1), ((0, 6), (1, 2)))),
    (10, 15, _shape((1, 4), (1, 5), ((0, 14), (1, 6)), (3, 0))),
    (24, 31, _shape((3, 2), ((0, 30), (1, 14), (2, 6)), (4, 0))),
    (81, 95, _shape((0, 80), (0, 81), (1, 41), (2, 21), ((0, 94), (1, 46), (2, 22)), (4, 4), (6, 0))),
]
