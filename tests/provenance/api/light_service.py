"""The real service with one light hash: the real ledger (SQLite, local block store), the real hash index, the real
lookup (RootSIFT verification, aligned comparison) and the real in-process queue, with pHash as the only (and so the
deciding) hash channel instead of the OSCAR-Net models, so an API test can ingest and look up in a second."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

from provenance.config import Settings
from provenance.hashing import PHashHasher
from provenance.index import HashIndex
from provenance.ingest import IngestPipeline
from provenance.lookup.service import Channels, Lookup
from provenance.services import Service, open_ledger
from workers.queue import InProcessQueue


def open_light_service(data_dir: Path, **settings: Any) -> Service:
    cfg = Settings(data_dir=data_dir, **settings)
    ledger = open_ledger(cfg)
    ledger.hashers = (PHashHasher(),)
    lookup = Lookup(ledger, HashIndex(data_dir, ledger.engine), hashers=ledger.hashers,
                    channels=Channels(sensitive="phash", tolerant=()), change_map_dir=data_dir / "change-maps")
    pipeline = IngestPipeline(ledger, lookup, duplicate_policy=cfg.ingest_duplicate_policy)
    queue = InProcessQueue(pipeline, block_when_full=False)
    return Service(cfg, ledger, lookup, pipeline, queue)


def photo(shared_photos: Path, n: int, *, side: int = 384, fmt: str = "PNG", quality: int = 92) -> bytes:
    """A Kodak photo, shrunk (fast features), as PNG or JPEG."""
    img = Image.open(shared_photos / "kodak24" / f"kodim{n:02d}.png").convert("RGB")
    img.thumbnail((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return out.getvalue()
