"""Which index channel holds the codes of which model: one channel *version* per (hash alg, model id).

Hamming distances mean something only between codes of one model, so codes of a new model (``oscar-v2-...``) never
share a channel with the old model's. The models every ledger was made with before channel versions existed keep the
bare alg as their channel (``oscar-net``, ``phash``, ``global-id``), so no stored index changes; any other model gets
``<alg>-<tag>``, where the tag is the 8 hex digits that end its model id (the sha256 prefix of its weights file:
``oscar-v2-1a2b3c4d`` -> ``oscar-net-1a2b3c4d``), or the first 8 of the model id's sha256 when it has none.

``provenance index rebuild --rehash`` fills a new model's channel from the stored images (``rehash.py``); lookup
searches every version it holds a model for while that runs. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

__all__ = ["BASE_MODELS", "channel_for", "channels_of"]

#: alg -> the model whose codes its bare channel holds (the models of ``default_hashers()`` when versions came in).
BASE_MODELS: dict[str, str] = {
    "oscar-net": "oscar-v1-e1b6df66",
    "phash": "phash-dct64-v1",
    "global-id": "global-id-v1-1b294740",
}
_TAGGED = re.compile(r"-([0-9a-f]{8})$")
_VERSION = re.compile(r"-[0-9a-f]{8}$")


def channel_for(alg: str, model_id: str) -> str:
    """The index channel of ``alg`` codes made by ``model_id``."""
    if BASE_MODELS.get(alg) == model_id:
        return alg
    found = _TAGGED.search(model_id)
    tag = found.group(1) if found else hashlib.sha256(model_id.encode()).hexdigest()[:8]
    return f"{alg}-{tag}"


def channels_of(alg: str, channels: Iterable[str]) -> list[str]:
    """The channels among ``channels`` that hold ``alg`` codes (any model), sorted."""
    return sorted(c for c in channels if c == alg or (c.startswith(alg + "-") and _VERSION.fullmatch(c[len(alg):])))
