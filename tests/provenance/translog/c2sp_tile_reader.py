"""An independent client of a C2SP ``tlog-tiles`` log, written for the tests from the specifications alone
(https://c2sp.org/tlog-tiles, RFC 6962 §2.1, RFC 9162 §2.1.3-2.1.4, https://c2sp.org/signed-note), so that the
served and exported tiles are checked by code that shares nothing with ours: it imports nothing from
``provenance``. Hashing, tile path math, root reconstruction at any tree size, proof generation from tiles and proof
verification are all done here.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

HEIGHT = 8  # tlog-tiles: "a tile represents the entire subtree of height 8"
WIDTH = 256  # "Full tiles MUST be exactly 256 hashes wide"


# --- RFC 6962 §2.1 -------------------------------------------------------------------------------------------------
def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """RFC 6962's k: the largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


# --- tile paths (tlog-tiles "Merkle Tree") -------------------------------------------------------------------------
def index_path(n: int) -> str:
    """"zero-padded 3-digit path elements. All but the last path element MUST begin with an x"."""
    digits = str(n)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])


def tile_path(level: int | str, n: int, width: int = WIDTH) -> str:
    return f"tile/{level}/{index_path(n)}" + ("" if width == WIDTH else f".p/{width}")


def entries_path(n: int, width: int = WIDTH) -> str:
    return tile_path("entries", n, width)


def parse_entry_bundle(data: bytes) -> list[bytes]:
    """"sequences of big-endian uint16 length-prefixed log entries"."""
    out, pos = [], 0
    while pos < len(data):
        assert pos + 2 <= len(data), "truncated length prefix"
        n = int.from_bytes(data[pos : pos + 2], "big")
        assert pos + 2 + n <= len(data), "truncated entry"
        out.append(data[pos + 2 : pos + 2 + n])
        pos += 2 + n
    return out


# --- signed notes and checkpoints --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    signers: tuple[str, ...]  # key names of every signature line


def verify_note(note: bytes, key_name: str, public_key: bytes) -> Checkpoint:
    """Check the Ed25519 (type 0x01) signature by ``key_name`` on a checkpoint note and parse its body."""
    text = note.decode("utf-8")
    body, sep, sigs = text.rpartition("\n\n")
    assert sep and text.endswith("\n"), "not a signed note"
    body += "\n"
    key_id = hashlib.sha256(key_name.encode() + b"\n\x01" + public_key).digest()[:4]
    names, verified = [], False
    for line in sigs[:-1].split("\n"):
        assert line.startswith("\u2014 "), line
        name, b64 = line[2:].split(" ")
        names.append(name)
        raw = base64.b64decode(b64)
        if name == key_name and raw[:4] == key_id:
            Ed25519PublicKey.from_public_bytes(public_key).verify(raw[4:], body.encode())  # raises if bad
            verified = True
    assert verified, f"no signature by {key_name}"
    origin, size, root64 = body[:-1].split("\n")[:3]
    return Checkpoint(origin, int(size), base64.b64decode(root64), tuple(names))


def parse_vkey(vkey: str) -> tuple[str, bytes]:
    """``<name>+<hex key id>+<base64(0x01 || key)>`` -> (name, 32-byte key)."""
    name, _kid, b64 = vkey.split("+", 2)
    raw = base64.b64decode(b64)
    assert raw[0] == 1 and len(raw) == 33
    return name, raw[1:]


# --- the tiled tree --------------------------------------------------------------------------------------------------
@dataclass
class TiledTree:
    """A tree of ``size`` leaves read through ``fetch(path) -> bytes`` (raises when missing); fetches are cached and
    every path fetched is kept in ``fetched``."""

    fetch: Callable[[str], bytes]
    size: int
    fetched: set[str] = field(default_factory=set)
    _tiles: dict[tuple[int, int], list[bytes]] = field(default_factory=dict)

    def _tile(self, level: int, n: int) -> list[bytes]:
        if (level, n) not in self._tiles:
            available = self.size // WIDTH**level  # hashes at this level for this tree size
            width = WIDTH if (n + 1) * WIDTH <= available else available % WIDTH
            assert width > 0, f"tile {level}/{n} does not exist at size {self.size}"
            path = tile_path(level, n, width)
            data = self.fetch(path)
            self.fetched.add(path)
            assert len(data) == 32 * width, f"{path} is {len(data)} bytes"
            self._tiles[(level, n)] = [data[i : i + 32] for i in range(0, len(data), 32)]
        return self._tiles[(level, n)]

    def tile_hash(self, level: int, i: int) -> bytes:
        """MTH(D[i * 256**level : (i + 1) * 256**level]), straight from a tile."""
        return self._tile(level, i // WIDTH)[i % WIDTH]

    def mth(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for any range in the tree (RFC 6962 §2.1, using tile hashes where a whole one fits)."""
        n = end - start
        assert 0 < n and end <= self.size
        if n & (n - 1) == 0 and start % n == 0:  # a perfect subtree: height k = 8*level + j
            k = n.bit_length() - 1
            level, j = divmod(k, HEIGHT)
            first = start // WIDTH**level
            hashes = [self.tile_hash(level, first + t) for t in range(2**j)]
            while len(hashes) > 1:
                hashes = [node_hash(hashes[t], hashes[t + 1]) for t in range(0, len(hashes), 2)]
            return hashes[0]
        k = largest_power_of_two_below(n)
        return node_hash(self.mth(start, start + k), self.mth(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        return hashlib.sha256(b"").digest() if size == 0 else self.mth(0, size)

    def inclusion_proof(self, m: int, n: int) -> list[bytes]:
        """PATH(m, D[0:n]) (RFC 6962 §2.1.1)."""
        def path(m: int, lo: int, hi: int) -> list[bytes]:
            if hi - lo == 1:
                return []
            k = largest_power_of_two_below(hi - lo)
            if m < k:
                return path(m, lo, lo + k) + [self.mth(lo + k, hi)]
            return path(m - k, lo + k, hi) + [self.mth(lo, lo + k)]
        return path(m, 0, n)

    def consistency_proof(self, m: int, n: int) -> list[bytes]:
        """PROOF(m, D[0:n]) = SUBPROOF(m, D[0:n], true) (RFC 6962 §2.1.2)."""
        def subproof(m: int, lo: int, hi: int, b: bool) -> list[bytes]:
            if m == hi - lo:
                return [] if b else [self.mth(lo, hi)]
            k = largest_power_of_two_below(hi - lo)
            if m <= k:
                return subproof(m, lo, lo + k, b) + [self.mth(lo + k, hi)]
            return subproof(m - k, lo + k, hi, False) + [self.mth(lo, lo + k)]
        return subproof(m, 0, n, True)

    def check_full_tiles(self) -> int:
        """Every full tile's 256 hashes hash to the hash the level above holds for it ("each hash in a tile is the
        Merkle Tree Hash of a *full* tile at the level below"); returns how many were checked."""
        checked, level = 0, 0
        while (above := self.size // WIDTH ** (level + 1)) > 0:
            for i in range(above):
                hashes = [self.tile_hash(level, i * WIDTH + t) for t in range(WIDTH)]
                while len(hashes) > 1:
                    hashes = [node_hash(hashes[t], hashes[t + 1]) for t in range(0, len(hashes), 2)]
                assert hashes[0] == self.tile_hash(level + 1, i), f"tile {level}/{i} does not hash to level {level + 1}"
                checked += 1
            level += 1
        return checked

    def entries(self, n: int) -> list[bytes]:
        """Entry bundle ``n`` at this size, each entry checked against the level-0 tile."""
        width = WIDTH if (n + 1) * WIDTH <= self.size else self.size % WIDTH
        path = entries_path(n, width)
        got = parse_entry_bundle(self.fetch(path))
        self.fetched.add(path)
        assert len(got) == width, f"{path} holds {len(got)} entries, not {width}"
        for t, entry in enumerate(got):
            assert leaf_hash(entry) == self.tile_hash(0, n * WIDTH + t), f"entry {t} of {path}"
        return got


# --- RFC 9162 verification -------------------------------------------------------------------------------------------
def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(size1: int, size2: int, proof: list[bytes], root1: bytes, root2: bytes) -> bool:
    """RFC 9162 §2.1.4.2 (for 0 < size1 < size2)."""
    if not 0 < size1 < size2 or not proof:
        return False
    if size1 & (size1 - 1) == 0:  # a power of two: prepend the old root
        proof = [root1, *proof]
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == root1 and sr == root2 and sn == 0
