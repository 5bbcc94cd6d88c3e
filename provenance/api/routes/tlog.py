"""The transparency log as C2SP ``tlog-tiles`` static resources, at the root of the server.

``GET /checkpoint`` (the latest published checkpoint note, with whatever signatures and cosignatures it carries),
``GET /tile/<L>/<N>[.p/<W>]`` (hash tiles) and ``GET /tile/entries/<N>[.p/<W>]`` (entry bundles). The bytes come
from :class:`provenance.tlog_tiles.TileReader`, which ``provenance log export-tiles`` also uses. Malformed paths get
400, tiles beyond the log 404 (mapped in ``api/errors.py``).
"""

from __future__ import annotations

import gzip

from fastapi import APIRouter, Request
from fastapi.responses import Response

from provenance.api.deps import ServiceDep
from provenance.api.schemas import errors
from provenance.tlog_tiles import TileReader
from provenance.translog.tiles import parse_tile_path

router = APIRouter(tags=["transparency log (C2SP tlog-tiles)"])

# A tile path always names the same bytes: a full tile never changes, and a partial tile's path carries its width.
TILE_CACHE = "public, max-age=31536000, immutable"
# The checkpoint moves as the log grows: caches may keep it a few seconds at most (tlog-tiles).
CHECKPOINT_CACHE = "public, max-age=5"
_OCTETS = "application/octet-stream"
_PUBLIC = {"Access-Control-Allow-Origin": "*"}  # public data: a monitor running in a browser may read it from anywhere


@router.get("/checkpoint", response_class=Response, responses={200: {"content": {"text/plain": {}}}, **errors(404)},
            summary="The latest signed checkpoint note (C2SP tlog-checkpoint), with its cosignatures")
def get_checkpoint(service: ServiceDep) -> Response:
    note = TileReader(service.ledger).checkpoint_note()
    return Response(note.encode("utf-8"), media_type="text/plain; charset=utf-8",
                    headers={"Cache-Control": CHECKPOINT_CACHE, **_PUBLIC})


@router.get("/tile/{tile_path:path}", response_class=Response,
            responses={200: {"content": {_OCTETS: {}}}, **errors(400, 404)},
            summary="A Merkle tree tile or an entry bundle (C2SP tlog-tiles)")
def get_tile(tile_path: str, request: Request, service: ServiceDep) -> Response:
    """``tile/<L>/<N>[.p/<W>]``: up to 256 consecutive 32-byte Merkle tree hashes at level ``L``;
    ``tile/entries/<N>[.p/<W>]``: the matching log entries (each a big-endian uint16 length, then the record CID)."""
    tile = parse_tile_path(f"tile/{tile_path}")
    data = TileReader(service.ledger).tile(tile)
    headers = {"Cache-Control": TILE_CACHE, **_PUBLIC}
    if tile.is_entries:  # the spec asks for HTTP-level compression of entry bundles
        headers["Vary"] = "Accept-Encoding"
        if "gzip" in request.headers.get("accept-encoding", "").lower():
            data = gzip.compress(data, compresslevel=6, mtime=0)
            headers["Content-Encoding"] = "gzip"
    return Response(data, media_type=_OCTETS, headers=headers)
