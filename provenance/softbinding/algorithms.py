"""Our soft-binding algorithms under the names we would register in the C2PA soft binding algorithm list.

The list (github.com/c2pa-org/softbinding-algorithm-list) names each algorithm in an entity-specific namespace that
begins with the entity's reversed domain (``com.example.algo1``); our C2PA assertions already use
``org.provenance-service``. A name stands for one algorithm *and* one model: codes of other weights are other
codes, so a model we have not registered gets a name of its own (``org.provenance-service.<alg>.<model id>``),
never a registered one. The draft entry we would submit is ``docs/softbinding-algorithm-list-entry.json``.

Values travel as the specification says: base64 (standard alphabet, padded) of the code's bytes, big-endian.
Pure: no I/O.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

__all__ = ["INTERNAL_ALGS", "NAMESPACE", "REGISTERED", "SoftBindingAlg", "binding_value", "hasher_name",
           "registered_name", "split_name"]

NAMESPACE = "org.provenance-service"

#: (hash alg as records carry it, model id) -> registered name. One row per model we calibrated and would list.
REGISTERED: dict[tuple[str, str], str] = {
    ("phash", "phash-dct64-v1"): f"{NAMESPACE}.phash.1",
    ("oscar-net", "oscar-v1-e1b6df66"): f"{NAMESPACE}.oscar-net.1",
    ("global-id", "global-id-v1-1b294740"): f"{NAMESPACE}.global-id.1",
}

#: The record-level names (``oscar-net``, ``phash``, ``global-id``): still accepted in queries, never listed.
INTERNAL_ALGS = frozenset(alg for alg, _ in REGISTERED)

_SEGMENT = re.compile(r"[^A-Za-z0-9-]+")


@dataclass(frozen=True)
class SoftBindingAlg:
    """One algorithm a service resolves: its list name, the record channel it searches, the model and the bits."""

    name: str
    alg: str
    model_id: str
    bits: int


def hasher_name(hasher: object) -> SoftBindingAlg:
    """The algorithm a hasher computes, without loading a network: a network hasher not loaded yet is named after
    the model ``default_hashers()`` loads (the registered one of its channel); once loaded, after its first use,
    after the model it actually runs."""
    alg, bits = str(getattr(hasher, "alg")), int(getattr(hasher, "bits"))
    if hasattr(hasher, "loaded_model_id"):
        model_id = getattr(hasher, "loaded_model_id") or next(
            (m for (a, m) in REGISTERED if a == alg), None) or str(getattr(hasher, "model_id"))
    else:
        model_id = str(getattr(hasher, "model_id"))
    return SoftBindingAlg(registered_name(alg, model_id), alg, model_id, bits)


def registered_name(alg: str, model_id: str) -> str:
    """The list name of codes made by ``alg`` with ``model_id``."""
    known = REGISTERED.get((alg, model_id))
    if known is not None:
        return known
    return f"{NAMESPACE}.{_slug(alg)}.{_slug(model_id)}"


def split_name(name: str) -> tuple[str, str] | None:
    """(alg, model id) of a registered name we issued, or None."""
    for key, value in REGISTERED.items():
        if value == name:
            return key
    return None


def binding_value(value_hex: str) -> str:
    """The specification's form of a code given as hex: base64 of its bytes, standard alphabet, padded."""
    return base64.b64encode(bytes.fromhex(value_hex)).decode("ascii")


def _slug(text: str) -> str:
    """A name segment: letters, digits and inner hyphens only (the list's pattern)."""
    return _SEGMENT.sub("-", text).strip("-") or "x"
