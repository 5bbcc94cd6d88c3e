"""Real inputs for the fuzzers to mutate: images encoded by Pillow from a real photo, and signed artefacts (records
v1 and v2, statements, key events, receipts, proof bundles, checkpoint notes, cosignatures, tlog-proofs, witness
requests) made by the real code over a real ledger."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from provenance import keyevents
from provenance.bundle import ProofBundle
from provenance.bundle.build import build_bundle
from provenance.cid import cid_for_bytes
from provenance.keyevents import KeyEvent
from provenance.ledger import Ledger
from provenance.metadata import PublisherMetadata
from provenance.receipts import (
    LookupReceipt,
    QueryCode,
    ReceiptCandidate,
    ReceiptCheckpoint,
    service_key_ref,
    sign_receipt,
)
from provenance.records import PerceptualHash, ProvenanceRecord
from provenance.statements import PublisherStatement, SignedStatement, key_id_for, utc_now
from provenance.translog.checkpoint import encode_verifier_key, parse_checkpoint_note
from provenance.translog.cosignature import add_cosignatures, cosign, encode_witness_vkey
from provenance.witness.protocol import encode_add_checkpoint
from tests.fixtures.services import ROOT
from tests.provenance.api.fakes import make_ledger, textured_image

PHOTO = ROOT.parent / "shared" / "data" / "photos" / "skimage" / "chelsea.png"
WITNESS_NAME = "witness.example/w1"


def _photo(size: tuple[int, int] = (64, 48)) -> Image.Image:
    if PHOTO.is_file():
        with Image.open(PHOTO) as img:
            return img.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    return Image.open(io.BytesIO(textured_image(7, size))).convert("RGB")


def _encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def image_seeds() -> dict[str, bytes]:
    """Small real images (a 64x48 crop of a photo) in every format and pixel layout the service decodes."""
    rgb = _photo()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate
    frames = [rgb, rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    grey16 = Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257)
    out = {
        "png-rgb": _encode(rgb, "PNG"),
        "png-rgba": _encode(rgb.convert("RGBA"), "PNG"),
        "png-palette": _encode(rgb.convert("P"), "PNG"),
        "png-grey16": _encode(grey16, "PNG"),
        "png-grey8": _encode(rgb.convert("L"), "PNG"),
        "jpeg-baseline": _encode(rgb, "JPEG", quality=80),
        "jpeg-progressive-exif": _encode(rgb, "JPEG", quality=70, progressive=True, exif=exif),
        "webp-lossy": _encode(rgb, "WEBP", quality=60),
        "webp-lossless": _encode(rgb, "WEBP", lossless=True),
        "gif-animated": _encode(frames[0].convert("P"), "GIF", save_all=True, append_images=[frames[1].convert("P")]),
        "bmp": _encode(rgb, "BMP"),
        "tiff": _encode(rgb, "TIFF"),
    }
    return out


# --- signed artefacts --------------------------------------------------------------------------------------------
@dataclass
class TrustWorld:
    ledger: Ledger
    records: dict[str, bytes]  # "v1", "v2-service", "v2-publisher" -> record bytes
    statement: SignedStatement
    events: list[KeyEvent]
    receipt: bytes
    receipt_vkey: str
    bundles: dict[str, ProofBundle]
    images: dict[str, bytes]
    note: str  # the latest checkpoint note, with one witness cosignature
    log_vkey: str
    witness_vkey: str
    add_checkpoint: bytes  # a C2SP tlog-witness request body

    def close(self) -> None:
        self.ledger.close()


def _v1_record(key: Ed25519PrivateKey, data: bytes) -> bytes:
    rec = ProvenanceRecord(
        image_sha256=hashlib.sha256(data).hexdigest(), image_cid=cid_for_bytes(data), media_type="image/png",
        width=64, height=48, byte_size=len(data),
        hashes=(PerceptualHash("phash", "phash-v1", 64, "0f1e2d3c4b5a6978"),),
        publisher_id="acme", key_id=key_id_for(key.public_key()),
        metadata=PublisherMetadata(title="Harbour", extra={"desk": "photo"}),
        ingested_at="2024-05-01T06:12:00Z", c2pa={"status": "absent"},
    )
    return rec.sign(key).to_bytes()


def build_world(data_dir: Path) -> TrustWorld:
    ledger = make_ledger(data_dir)
    images = {name: textured_image(seed) for seed, name in enumerate(("custodial", "own-key", "rotated"), 11)}
    ledger.add_publisher("acme")
    v2_service = ledger.ingest(images["custodial"], publisher="acme", metadata=PublisherMetadata(
        title="Harbour at dawn", author="A. Photographer", capture_time="2024-05-01T06:12:00Z",
        extra={"desk": "photo"}))

    key1, key2 = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    ledger.add_publisher("newsroom", key1.public_key())
    data = images["own-key"]
    statement = PublisherStatement(hashlib.sha256(data).hexdigest(), cid_for_bytes(data), "image/png",
                                   PublisherMetadata(title="Own key"), "newsroom", key_id_for(key1.public_key()),
                                   utc_now()).sign(key1)
    v2_publisher = ledger.ingest(data, publisher="newsroom", metadata=PublisherMetadata(), statement=statement)
    rotation = keyevents.rotation("newsroom", key_id_for(key1.public_key()), key2.public_key(), "publisher", key1)
    ledger.append_key_event(rotation)
    withdrawal = keyevents.withdrawal("newsroom", v2_publisher.cid, key2, reason="wrong caption")
    revocation = keyevents.revocation("newsroom", key_id_for(key1.public_key()), key2, reason="superseded")
    cp = ledger.anchor()

    witness = Ed25519PrivateKey.generate()
    body = parse_checkpoint_note(cp.note)[0].body()
    note = add_cosignatures(cp.note, [cosign(body, WITNESS_NAME, witness, 1_700_000_000)])
    bundles = {name: b for name, cid in (("service", v2_service.cid), ("publisher", v2_publisher.cid))
               if (b := build_bundle(ledger, cid)) is not None}

    service_key = Ed25519PrivateKey.generate()
    receipt = sign_receipt(LookupReceipt(
        receipt_id="0123456789abcdef0123456789abcdef", issued_at="2026-01-02T03:04:05.123456Z",
        service=service_key_ref("provenance-log", service_key),
        query_sha256=hashlib.sha256(b"query image").hexdigest(),
        codes=(QueryCode("phash", "phash-v1", 64, "00ff00ff00ff00ff"),),
        verdict="match", record_cid=v2_service.cid,
        candidates=(ReceiptCandidate(v2_service.cid, {"phash": 2}),),
        checkpoint=ReceiptCheckpoint("test.example/log", cp.tree_size, cp.root),
    ), service_key).to_bytes()

    with ledger.reader.connect() as conn:
        records = {"v2-service": ledger.store.get(conn, v2_service.cid).record_bytes,  # type: ignore[union-attr]
                   "v2-publisher": ledger.store.get(conn, v2_publisher.cid).record_bytes}  # type: ignore[union-attr]
    records["v1"] = _v1_record(Ed25519PrivateKey.generate(), images["custodial"])
    return TrustWorld(
        ledger=ledger, records=records, statement=statement,
        events=[keyevents.registration("acme", key1.public_key(), "service", Ed25519PrivateKey.generate()),
                rotation, revocation, withdrawal],
        receipt=receipt, receipt_vkey=encode_verifier_key("provenance-log", service_key.public_key()),
        bundles=bundles, images=images, note=note,
        log_vkey=encode_verifier_key(ledger.config.log_key_name, ledger.log_public_key()),
        witness_vkey=encode_witness_vkey(WITNESS_NAME, witness.public_key()),
        add_checkpoint=encode_add_checkpoint(0, [], cp.note),
    )
