"""``provenance demo``: the whole story on the embedded default (no services, tasks in-process), with figures.

1. a publisher ingests sample photos (``--photos DIR``, else the photos bundled in the scikit-image wheel, so it
   runs on any fresh install); 2. the log's checkpoint is anchored on the in-process EVM; 3. three lookups: a benign
   re-share (-> match), a copy the demo edits itself by pasting an object in (-> altered, change map on disk), and
   a photo that was never ingested (-> no_match); 4. the audit of every record, checkpoint and anchor.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from provenance.errors import ProvenanceError
from provenance.ledger import IngestFailure, IngestResult
from provenance.records import PublisherMetadata

#: Bundled scikit-image photos the demo ingests (colour photographs; the test charts are left out) ...
BUNDLED = ("chelsea.png", "astronaut.png", "coffee.png", "rocket.jpg", "camera.png", "hubble_deep_field.jpg",
           "coins.png", "retina.jpg")
#: ... and the one it never ingests, to ask about an unrelated photo.
UNRELATED = "motorcycle_left.png"


def skimage_data_dir() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


@dataclass(frozen=True)
class DemoOutcome:
    ok: bool
    verdicts: dict[str, str]


def benign_reshare(data: bytes) -> bytes:
    """What a social network does: downscale to 60 %, trim 3 % off each side, re-encode as JPEG quality 70."""
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")
        w, h = im.size
        im = im.crop((int(w * 0.03), int(h * 0.03), int(w * 0.97), int(h * 0.97)))
        im = im.resize((int(im.width * 0.6), int(im.height * 0.6)), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=70)
    return buf.getvalue()


def paste_object(target: bytes, donor: bytes) -> bytes:
    """Paste an elliptical cut-out of ``donor``'s centre (a quarter of the target's short side) into the target's
    upper-left quadrant with a feathered edge, then save as JPEG quality 90: an inserted object."""
    with Image.open(io.BytesIO(target)) as t, Image.open(io.BytesIO(donor)) as d:
        t, d = t.convert("RGB"), d.convert("RGB")
        side = min(t.size) // 4
        cx, cy = d.width // 2, d.height // 2
        half = min(d.size) // 4
        patch = d.crop((cx - half, cy - half, cx + half, cy + half)).resize((side, side), Image.Resampling.LANCZOS)
        mask = Image.new("L", (side, side), 0)
        ImageDraw.Draw(mask).ellipse((2, 2, side - 3, side - 3), fill=255)
        mask = mask.filter(ImageFilter.GaussianBlur(3))
        t.paste(patch, (t.width // 5, t.height // 6), mask)
        buf = io.BytesIO()
        t.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _lookup_with_receipt(service, data: bytes, label: str):  # type: ignore[no-untyped-def]
    """The lookup's ``Verdict`` and its signed receipt (docs/receipts.md)."""
    from provenance.lookup_receipts import answer_with_receipt

    seen = []

    def answer():  # type: ignore[no-untyped-def]
        seen.append(service.lookup.lookup(data, name=label))
        return seen[0].to_obj()

    _, signed = answer_with_receipt(service, service.settings, data, answer)
    return seen[0], signed


def _bundle_step(ledger, publisher: str, original: Path, out_dir: Path,  # type: ignore[no-untyped-def]
                 echo: Callable[[str], None]) -> bool:
    """A proof bundle for the benign copy's source record, verified the way a third party would: from the file
    alone (no database, no server), with the original image's bytes."""
    from provenance.bundle import ProofBundle, VerifyPolicy, verify_bundle
    from provenance.bundle.build import build_bundle
    from provenance.translog import encode_verifier_key

    data = original.read_bytes()
    found = ledger.find_existing(data, publisher)
    bundle = build_bundle(ledger, found.cid) if found is not None else None
    if bundle is None:
        echo("5. Proof bundle: FAILED (the source record is not in a checkpoint)")
        return False
    path = out_dir / "bundle.json"
    path.write_bytes(bundle.to_json())
    log_key = encode_verifier_key(ledger.config.log_key_name, ledger.log_public_key())
    try:
        report = verify_bundle(ProofBundle.from_json(path.read_bytes()), image=data,
                               policy=VerifyPolicy(log_key=log_key))
    except ProvenanceError as exc:
        echo(f"5. Proof bundle {path}: FAILED to verify: {exc}")
        return False
    echo(f"5. Proof bundle {path} ({path.stat().st_size:,} bytes) for {original.name}'s record: "
         f"{len(report.checks)} checks passed offline (record, statement and attestation signatures, "
         f"{report.key_events} key event(s), inclusion in checkpoint {report.tree_size}, the image's digest); "
         f"anyone can run: provenance verify {path} --image {original.name}")
    return True


def run_demo(service, *, photos: Path | None, publisher: str, out_dir: Path,  # type: ignore[no-untyped-def]
             echo: Callable[[str], None], audit: Callable[[], bool]) -> DemoOutcome:
    ledger, pipeline, lookup = service.ledger, service.pipeline, service.lookup
    from provenance.ledger import expand_image_paths

    if photos is not None:
        files = list(expand_image_paths([photos]))
        source = str(photos)
    else:
        files = [skimage_data_dir() / name for name in BUNDLED]
        source = "scikit-image's bundled photos"
    if len(files) < 2:
        raise ProvenanceError(f"the demo needs at least 2 photos, {source} has {len(files)}")
    out_dir.mkdir(parents=True, exist_ok=True)

    with ledger.reader.connect() as conn:
        known = ledger.store.has_publisher(conn, publisher)
    if not known:
        echo(f"1. Publisher {publisher!r} registered with Ed25519 key {ledger.add_publisher(publisher)} (service "
             "custody, for this demo; a newsroom keeps its own key: provenance client keygen / submit). The "
             "registration is a key event in the log, signed by the operator.")
    else:
        echo(f"1. Publisher {publisher!r} already registered.")

    start = time.perf_counter()
    results: list[IngestResult] = []
    for path in files:
        outcome = next(iter(pipeline.ingest_paths([path], publisher=publisher,
                                                  metadata=PublisherMetadata(title=path.stem,
                                                                             extra={"source": source}))))
        if isinstance(outcome, IngestFailure):
            echo(f"   refused {path.name}: {outcome.error}")
        else:
            results.append(outcome)
    took = time.perf_counter() - start
    new = sum(not r.duplicate for r in results)
    echo(f"2. Ingested {len(results)} photos from {source} ({new} new) in {took:.1f} s "
         f"({took / max(1, len(files)):.2f} s/photo: C2PA, OSCAR-Net + pHash + global-id, RootSIFT, IPFS-style "
         f"CIDs, signed, logged, indexed).")

    cp = ledger.anchor()
    receipt = cp.anchor
    echo(f"3. Checkpoint of {cp.tree_size} leaves (root {cp.root.hex()[:16]}...) anchored on "
         f"{ledger.anchor_backend.describe()}: tx {receipt.tx_hash if receipt else '?'}, "
         f"gas {receipt.gas_used if receipt else '?'}.")

    benign_src, edited_src = files[0], files[1]
    donor = files[2] if len(files) > 2 else files[0]
    unrelated_path = skimage_data_dir() / UNRELATED
    queries = {
        "benign re-share": (benign_reshare(benign_src.read_bytes()), f"{benign_src.name}, 60 %, cropped, JPEG 70",
                            "match"),
        "edited copy": (paste_object(edited_src.read_bytes(), donor.read_bytes()),
                        f"{edited_src.name} with a piece of {donor.name} pasted in", "altered"),
        "unrelated photo": (unrelated_path.read_bytes(), f"{unrelated_path.name}, never ingested", "no_match"),
    }
    from provenance.receipts import verify_receipt

    echo("4. Lookups, each with a receipt signed with the log's key:")
    verdicts: dict[str, str] = {}
    ok = True
    for label, (data, what, expected) in queries.items():
        (out_dir / f"query-{label.replace(' ', '-')}.jpg").write_bytes(data)
        v, signed = _lookup_with_receipt(service, data, label)
        verdicts[label] = v.verdict
        ok &= v.verdict == expected
        best = next((c for c in v.candidates if c.record_cid == v.record_cid), None)
        detail = (f"hash distance {best.distance}, {best.inliers} inliers" if best else
                  f"{len(v.candidates)} candidates, none verified")
        echo(f"   {label} ({what}): {v.verdict.upper()} (expected {expected}); {detail}; "
             f"{v.timings_ms.get('total', 0):.0f} ms")
        if v.change_map:
            echo(f"      changed regions: {[r.to_obj() for r in v.regions]}; change map {v.change_map}")
        receipt_path = out_dir / f"receipt-{label.replace(' ', '-')}.json"
        receipt_path.write_bytes(signed.to_bytes())
        r = verify_receipt(receipt_path.read_bytes(), service.receipts.verifier_key)
        said = r.no_match_statement if r.record_cid is None else f"as of checkpoint {r.checkpoint.size}"
        echo(f"      signed receipt {receipt_path}: {said}; verifies offline under {r.service.name}+"
             f"{r.service.key_id} (provenance verify-receipt)")
    ok &= _bundle_step(ledger, publisher, benign_src, out_dir, echo)
    echo("6. Audit:")
    ok &= audit()
    return DemoOutcome(ok, verdicts)
