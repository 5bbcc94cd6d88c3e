"""``cid_for_bytes`` must equal the CID a real daemon computes, across every layout boundary."""

from __future__ import annotations

import random

import httpx
import pytest

from provenance.cid import CHUNK_SIZE, MAX_LINKS, canonical_cid, cid_for_bytes

pytestmark = pytest.mark.ipfs

MiB = 1 << 20


def daemon_cid(api_url: str, data: bytes, chunker: str = f"size-{CHUNK_SIZE}") -> str:
    params = {"cid-version": "1", "raw-leaves": "true", "cid-base": "base32", "pin": "false", "chunker": chunker}
    files = {"file": ("blob", data, "application/octet-stream")}
    response = httpx.post(f"{api_url}/api/v0/add", params=params, files=files, timeout=300)
    response.raise_for_status()
    return canonical_cid(response.json()["Hash"])


@pytest.mark.parametrize(
    "size",
    [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, MiB, 3 * MiB + 7, 46 * MiB],
    ids=["0", "1", "262143", "262144", "262145", "1MiB", "3MiB+7", "46MiB"],
)
def test_matches_daemon(ipfs_api_url: str, size: int) -> None:
    # 46 MiB = 184 chunks > 174 links: two dag-pb layers above the leaves
    data = random.Random(size).randbytes(size)
    assert cid_for_bytes(data) == daemon_cid(ipfs_api_url, data)


def test_three_layers_match_daemon(ipfs_api_url: str) -> None:
    """> 174*174 leaves (3 dag-pb layers) at a feasible size, using 1-byte chunks (256 distinct leaves)."""
    data = bytes(i % 256 for i in range(MAX_LINKS * MAX_LINKS + 3))
    assert cid_for_bytes(data, chunk_size=1) == daemon_cid(ipfs_api_url, data, chunker="size-1")
