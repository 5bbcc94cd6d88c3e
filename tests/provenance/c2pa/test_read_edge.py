"""Reading what is not a well-formed signed image: never raises, says what it found. Plus sniffing and the summary."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from provenance.c2pa import (
    C2paConfigError,
    C2paManifestUnreadableError,
    C2paSummary,
    manifest_store_json,
    read_c2pa,
    sniff_media_type,
)
from provenance.c2pa.summary import summarise_store
from provenance.canonical import canonical_json
from provenance.errors import InvalidRecordError


def encode(fmt: str, size: tuple[int, int] = (32, 24), **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("data", [b"plain text, not pixels", b"%PDF-1.7 c2pa could read a PDF, but we read images"])
def test_non_image_is_an_error_not_an_exception(data: bytes) -> None:
    summary = read_c2pa(data)
    assert summary.status == "error" and summary.format is None
    assert "not an image format that can carry C2PA" in (summary.error or "")
    with pytest.raises(C2paManifestUnreadableError, match="not an image format"):
        manifest_store_json(data)


def test_non_image_labelled_as_jpeg_is_an_error() -> None:
    summary = read_c2pa(b"plain text, not pixels", "image/jpeg")
    assert summary.status == "error" and "NotSupported" in (summary.error or "")


def test_empty_bytes() -> None:
    assert read_c2pa(b"").status == "error"


@pytest.mark.parametrize("keep", [5_000, 40_000])
def test_truncated_inside_the_manifest_is_an_error(c2pa_data: Path, keep: int) -> None:
    """C.jpg's manifest spans its first ~45 kB of APP11 segments: cut inside them, nothing can be parsed."""
    summary = read_c2pa((c2pa_data / "C.jpg").read_bytes()[:keep])
    assert summary.status == "error" and "could not be parsed" in (summary.error or "")


def test_truncated_after_the_manifest_is_invalid(c2pa_data: Path) -> None:
    """Cut in the image data, the manifest still reads, but the hard binding no longer matches."""
    summary = read_c2pa((c2pa_data / "C.jpg").read_bytes()[:60_000])
    assert (summary.status, summary.validation_state) == ("present", "Invalid")
    assert "assertion.dataHash.mismatch" in summary.failure_codes


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "GIF"])
def test_images_without_manifest_are_absent(fmt: str) -> None:
    summary = read_c2pa(encode(fmt))
    assert summary == C2paSummary(status="absent", format=sniff_media_type(encode(fmt)))


def test_real_jpeg_without_manifest(shared_photos: Path) -> None:
    summary = read_c2pa((shared_photos / "thorn_perception" / "image1.jpg").read_bytes())
    assert summary.to_obj()["status"] == "absent" and summary.format == "image/jpeg"


def test_bmp_cannot_carry_a_manifest_so_it_is_absent() -> None:
    assert read_c2pa(encode("BMP")) == C2paSummary(status="absent", format="image/bmp")


def test_given_mime_wins_over_sniffing(c2pa_data: Path) -> None:
    # A wrong label does not stop c2pa (it reads the container it finds) and the summary keeps the manifest's format.
    summary = read_c2pa((c2pa_data / "C.jpg").read_bytes(), "image/png")
    assert (summary.status, summary.format) == ("present", "image/jpeg")


def test_bad_trust_anchors_are_a_config_error(c2pa_data: Path) -> None:
    with pytest.raises(C2paConfigError, match="not a PEM certificate bundle"):
        read_c2pa((c2pa_data / "C.jpg").read_bytes(), trust_anchors="-----BEGIN NONSENSE-----")


# --- sniffing ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fmt, media",
    [
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("WEBP", "image/webp"),
        ("TIFF", "image/tiff"),
        ("GIF", "image/gif"),
        ("BMP", "image/bmp"),
    ],
)
def test_sniff_real_encodings(fmt: str, media: str) -> None:
    assert sniff_media_type(encode(fmt)) == media


@pytest.mark.parametrize(
    "head, media",
    [
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "image/avif"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "image/heic"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "image/heic"),  # HEIC by a compatible brand
        (b"\x00\x00\x00\x14ftypmif1\x00\x00\x00\x00mif1", "image/heif"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", None),  # an MP4, not an image
        (b"\x00\x00\x00\xffftypheic", None),  # ftyp box longer than the data
        (b"hello", None),
        (b"", None),
    ],
)
def test_sniff_heif_family_and_others(head: bytes, media: str | None) -> None:
    assert sniff_media_type(head) == media


# --- the summary as a record field ------------------------------------------------------------------------------------
def _store() -> dict:
    """A minimal manifest store in c2pa's JSON, with the shapes the summary has to cope with."""
    return {
        "active_manifest": "urn:c2pa:1",
        "manifests": {
            "urn:c2pa:1": {
                "claim_generator_info": [{"name": "cam", "version": "2.0"}, {"name": "lib"}],
                "assertions": [
                    {"label": "c2pa.actions.v2", "data": {"actions": [{"action": "c2pa.created"}, {"nope": 1}]}},
                    {"label": "c2pa.actions", "data": {"actions": [{"action": "c2pa.edited"}]}, "instance": 1},
                    {
                        "label": "c2pa.soft-binding",
                        "data": {"alg": "a", "blocks": [{"scope": {}, "value": [1, 2, 255]}]},
                    },
                    {"label": "c2pa.soft-binding.v2", "data": {"alg": "b", "blocks": [{"scope": {}, "value": 3.5}]}},
                    {"label": "c2pa.soft-bindingX", "data": {"alg": "c", "blocks": [{"scope": {}, "value": "x"}]}},
                    {"label": "org.provenance-service.record", "data": {"record_cid": "bafkreiabc"}},
                ],
                "ingredients": [{"relationship": "parentOf"}],
                "signature_info": {"issuer": "Org", "time": 1700000000},
            }
        },
        "validation_status": [{"code": "a.failure"}, {"code": "a.failure"}, {"code": "b.failure"}],
        "validation_state": "Valid",
    }


def test_summarise_store_copes_with_every_shape() -> None:
    s = summarise_store(_store(), asset_format="image/png")
    assert s.claim_generator == "cam/2.0 lib"
    assert s.actions == ("c2pa.created", "c2pa.edited")
    assert [(b.alg, b.value) for b in s.soft_bindings] == [("a", "AQL/")]  # byte string -> base64; float dropped
    assert s.record_cid == "bafkreiabc"
    assert s.failure_codes == ("a.failure", "b.failure")  # no validation_results: the flat list, deduplicated
    assert s.signed_at is None and s.signer == "Org"  # a non-string time is not passed on
    assert s.format == "image/png" and s.ingredients[0].title is None
    canonical_json(s.to_obj())


def test_summary_round_trips_and_refuses_other_shapes() -> None:
    s = summarise_store(_store(), asset_format="image/png")
    obj = s.to_obj()
    assert C2paSummary.from_obj(obj) == s
    broken: object
    for broken in (
        {**obj, "status": "maybe"},
        {**obj, "validation_state": "Fine"},
        {**obj, "extra": 1},
        {k: v for k, v in obj.items() if k != "error"},
        {**obj, "actions": [1]},
        {**obj, "title": 5},
        {**obj, "soft_bindings": [{"alg": "a", "value": None, "alg_params": None}]},
        {**obj, "ingredients": [{"title": None}]},
        {**obj, "failure_codes": "a.failure"},
        [],
    ):
        with pytest.raises(InvalidRecordError):
            C2paSummary.from_obj(broken)


# --- processes --------------------------------------------------------------------------------------------------------
def _read_in_child(path: str) -> tuple[str, str | None, str | None]:
    summary = read_c2pa(Path(path).read_bytes())
    return summary.status, summary.validation_state, summary.error


def test_reading_works_in_a_forked_worker(c2pa_data: Path) -> None:
    """Celery's prefork pool forks after the parent may have read: c2pa handles from the parent are dead in a child."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    assert read_c2pa((c2pa_data / "C.jpg").read_bytes()).validation_state == "Valid"  # the parent's context exists
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        assert pool.submit(_read_in_child, str(c2pa_data / "C.jpg")).result(timeout=60) == ("present", "Valid", None)
