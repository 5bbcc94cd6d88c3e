"""Binary hash codes as the index stores them: one ``uint8`` row of ``bits // 8`` bytes per code.

Bit order is the convention of our 64-bit hashes: the first bit is the most significant, so the integer
``0x8000_0000_0000_0000`` is the row ``[0x80, 0, 0, 0, 0, 0, 0, 0]`` and its hex string is the row's bytes in order.
Hamming distance does not depend on the order, but every producer and consumer must agree on it for a stored row to
round-trip to the hex string of the record.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from provenance.index.errors import DuplicateIdError, InvalidCodeError

__all__ = [
    "check_bits",
    "check_codes",
    "check_ids",
    "code_from_hex",
    "code_from_int",
    "code_to_hex",
    "code_to_int",
    "codes_from_hex",
    "hamming_distances",
]

#: Largest id the index accepts; faiss reserves -1 for "no result", so ids are non-negative int64.
MAX_ID = 2**63 - 1


def check_bits(bits: int) -> int:
    """Validate a code width: a positive multiple of 8 (faiss binary indexes work on whole bytes)."""
    if isinstance(bits, bool) or not isinstance(bits, int) or bits <= 0 or bits % 8:
        raise InvalidCodeError(f"code width must be a positive multiple of 8 bits, got {bits!r}")
    return bits


def code_from_int(value: int, bits: int) -> np.ndarray:
    """The ``uint8`` row of ``value`` (0 <= value < 2**bits), most significant bit first."""
    check_bits(bits)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise InvalidCodeError(f"code must be an integer in [0, 2**{bits}), got {value!r}")
    return np.frombuffer(value.to_bytes(bits // 8, "big"), dtype=np.uint8).copy()


def code_from_hex(hex_code: str, bits: int | None = None) -> np.ndarray:
    """The ``uint8`` row of a hex string (no prefix, either case); with ``bits``, it must have exactly bits/4 digits."""
    if not isinstance(hex_code, str):
        raise InvalidCodeError(f"code must be a hex string, got {type(hex_code).__name__}")
    if bits is not None:
        check_bits(bits)
        if len(hex_code) != bits // 4:
            raise InvalidCodeError(f"a {bits}-bit code has {bits // 4} hex digits, got {len(hex_code)}: {hex_code!r}")
    elif not hex_code or len(hex_code) % 2:
        raise InvalidCodeError(f"code must have a positive, even number of hex digits, got {hex_code!r}")
    try:
        raw = bytes.fromhex(hex_code)
    except ValueError:
        raise InvalidCodeError(f"code is not hexadecimal: {hex_code!r}") from None
    if len(raw) * 2 != len(hex_code):  # bytes.fromhex skips spaces; a code has none
        raise InvalidCodeError(f"code is not hexadecimal: {hex_code!r}")
    return np.frombuffer(raw, dtype=np.uint8).copy()


def codes_from_hex(hex_codes: Iterable[str], bits: int) -> np.ndarray:
    """Stack hex strings into an ``[n, bits/8]`` array (all the same width)."""
    rows = [code_from_hex(h, bits) for h in hex_codes]
    if not rows:
        return np.empty((0, bits // 8), dtype=np.uint8)
    return np.stack(rows)


def code_to_hex(row: np.ndarray | Sequence[int]) -> str:
    """Lower-case hex of one row (the inverse of :func:`code_from_hex`)."""
    return bytes(np.asarray(row, dtype=np.uint8)).hex()


def code_to_int(row: np.ndarray | Sequence[int]) -> int:
    """Integer of one row, first bit most significant (the inverse of :func:`code_from_int`)."""
    return int.from_bytes(bytes(np.asarray(row, dtype=np.uint8)), "big")


def check_codes(codes: object, bits: int) -> np.ndarray:
    """An ``[n, bits/8]`` C-contiguous ``uint8`` array, or :class:`InvalidCodeError` saying what is wrong."""
    arr = np.asarray(codes)
    width = bits // 8
    if arr.dtype != np.uint8:
        raise InvalidCodeError(f"codes must be uint8, got {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != width:
        raise InvalidCodeError(f"codes must have shape [n, {width}] for {bits}-bit codes, got {list(arr.shape)}")
    return np.ascontiguousarray(arr)


def check_ids(ids: object) -> np.ndarray:
    """A 1-D ``int64`` array of non-negative ids (integer input of any width is accepted if it fits)."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise InvalidCodeError(f"ids must be a 1-D array, got shape {list(arr.shape)}")
    if arr.size == 0:
        return np.empty(0, dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise InvalidCodeError(f"ids must be integers, got {arr.dtype}")
    if arr.dtype == np.uint64 and int(arr.max()) > MAX_ID:
        raise InvalidCodeError(f"ids must fit in int64, got {int(arr.max())}")
    out = np.ascontiguousarray(arr, dtype=np.int64)
    if int(out.min()) < 0:
        raise InvalidCodeError(f"ids must be non-negative (faiss reserves -1), got {int(out.min())}")
    return out


def hamming_distances(codes: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Hamming distance of every row of ``codes`` to one ``query`` row (numpy, no faiss): a reference for tests."""
    return np.bitwise_count(np.bitwise_xor(codes, query[None, :])).sum(axis=1, dtype=np.int64)


def check_batch(ids: object, codes: object, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate one ``Index.add`` batch: ids and codes well formed, as many of each, no id twice."""
    ids_arr = check_ids(ids)
    codes_arr = check_codes(codes, bits)
    if len(ids_arr) != len(codes_arr):
        raise InvalidCodeError(f"{len(ids_arr)} ids for {len(codes_arr)} codes")
    if len(ids_arr) > 1 and not np.all(ids_arr[1:] > ids_arr[:-1]) and len(np.unique(ids_arr)) != len(ids_arr):
        raise DuplicateIdError("the same id appears more than once in one add")
    return ids_arr, codes_arr
