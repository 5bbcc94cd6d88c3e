"""RootSIFT extraction and the feature blob: coordinates in the original frame, a lossless-enough round trip, and
a clear error for every way a blob can be bad."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from provenance.errors import InvalidInputError, ProvenanceError
from provenance.lookup.errors import AnalysisInputError, FeatureBlobError
from provenance.lookup.features import MAX_KEYPOINTS, LocalFeatures, extract_features


def test_rootsift_features_of_a_real_photo(reference_rgb: np.ndarray, reference_features: LocalFeatures) -> None:
    f = reference_features
    h, w = reference_rgb.shape[:2]
    assert (f.width, f.height) == (w, h)
    assert 500 <= len(f) <= MAX_KEYPOINTS
    assert f.descriptors.shape == (len(f), 128) and f.descriptors.dtype == np.float32
    assert np.allclose(np.linalg.norm(f.descriptors, axis=1), 1.0, atol=1e-3)  # RootSIFT: unit L2 norm
    assert f.descriptors.min() >= 0
    assert np.all((f.points >= -0.5) & (f.points <= np.array([w, h]) - 0.5))
    assert not f.points.flags.writeable  # shared, cached instances cannot be changed under a reader


def test_large_images_are_reduced_but_report_original_pixels(reference_rgb: np.ndarray) -> None:
    import cv2

    from provenance.lookup.geometry import verify

    big = cv2.resize(reference_rgb, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)  # 1500 px: reduced to 1024
    fb = extract_features(big)
    assert (fb.width, fb.height) == (1500, 1500)
    assert fb.points.max() > 1100  # original frame, not the 1024 px working copy
    result = verify(fb, extract_features(reference_rgb))
    assert result.passed
    # Pixel centres at integers: x_small = (x_big + 0.5) / 3 - 0.5.
    expected = np.array([[1 / 3, 0, -1 / 3], [0, 1 / 3, -1 / 3], [0, 0, 1]])
    pts = np.array([[100.0, 200.0, 1.0], [1400.0, 700.0, 1.0], [750.0, 1300.0, 1.0]])
    got = pts @ result.homography.T
    assert np.allclose(got[:, :2] / got[:, 2:], (pts @ expected.T)[:, :2], atol=1.5)


def test_blob_round_trip_is_close_and_stable(reference_features: LocalFeatures) -> None:
    blob = reference_features.to_bytes()
    assert blob[:4] == b"PVLF"
    assert len(blob) < 140 * len(reference_features)  # uint16 xy + f16 size/angle + uint8 RootSIFT, zlib'd
    back = LocalFeatures.from_bytes(blob)
    assert (back.width, back.height, len(back)) == (reference_features.width, reference_features.height,
                                                    len(reference_features))
    assert np.abs(back.points - reference_features.points).max() < 0.02
    assert np.abs(back.descriptors - reference_features.descriptors).max() <= 0.5 / 400 + 1e-6
    assert np.allclose(back.angles, reference_features.angles, atol=0.2)
    assert np.allclose(back.sizes, reference_features.sizes, rtol=1e-3)
    assert back.to_bytes() == blob  # quantisation is idempotent: re-serialising changes nothing
    empty = LocalFeatures.empty(7, 5)
    assert len(LocalFeatures.from_bytes(empty.to_bytes())) == 0


def _payload(blob: bytes) -> bytes:
    return zlib.decompress(blob[5:])


@pytest.mark.parametrize("name", ["bit_flip", "truncated", "magic", "version", "short_payload", "long_payload",
                                  "absurd_size", "empty", "not_bytes"])
def test_bad_blobs_raise_feature_blob_error(reference_features: LocalFeatures, name: str) -> None:
    blob = reference_features.to_bytes()
    payload = _payload(blob)
    bad = {
        "bit_flip": blob[:100] + bytes([blob[100] ^ 0x40]) + blob[101:],
        "truncated": blob[: len(blob) // 2],
        "magic": b"XXXX" + blob[4:],
        "version": blob[:4] + b"\x09" + blob[5:],
        "short_payload": blob[:5] + zlib.compress(payload[:-7]),
        "long_payload": blob[:5] + zlib.compress(payload + b"\0" * 136),
        "absurd_size": blob[:5] + zlib.compress(struct.pack("<IIIf", 0, 10, 0, 400.0)),
        "empty": b"",
        "not_bytes": "PVLF",
    }[name]
    with pytest.raises(FeatureBlobError) as err:
        LocalFeatures.from_bytes(bad)  # type: ignore[arg-type]
    assert isinstance(err.value, ProvenanceError) and isinstance(err.value, InvalidInputError)
    assert str(err.value)


def test_tiny_and_featureless_images_give_empty_features() -> None:
    assert len(extract_features(np.zeros((8, 8, 3), np.uint8))) == 0
    grey = extract_features(np.full((300, 400, 3), 128, np.uint8))
    assert len(grey) == 0 and (grey.width, grey.height) == (400, 300)


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8),
                                 np.zeros((10, 10, 3), np.float32), np.zeros((0, 10, 3), np.uint8), [[1, 2, 3]]])
def test_non_rgb_input_is_refused(bad) -> None:
    with pytest.raises(AnalysisInputError):
        extract_features(bad)
