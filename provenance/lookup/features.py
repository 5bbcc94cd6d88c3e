"""Local features for geometric verification: RootSIFT keypoints, and their compact stored form.

Why SIFT: it is patent-free since 2020, ships with OpenCV, and survives the resizes, recompression and colour
changes of re-sharing far better than binary descriptors. Why RootSIFT (L1-normalise, then square root): comparing
the result with Euclidean distance equals comparing SIFT histograms with the Hellinger kernel, which is a consistent
gain for matching at no cost (Arandjelovic & Zisserman, CVPR 2012).

Extraction is done on a copy whose long side is at most ``MAX_SIDE`` (bounded cost, and stored references and
queries are compared at similar detail), with a lowered contrast threshold so low-texture photos (fog, sky, studio
shots) still get enough keypoints; the strongest ``MAX_KEYPOINTS`` are kept. Keypoint coordinates are reported in
the *original* image's pixel frame, with OpenCV's convention: (0, 0) is the centre of the top-left pixel.

The blob (``LocalFeatures.to_bytes``) is stored beside each record at ingest. It is versioned, zlib-compressed and
never pickled: a tampered blob can at worst fail to load (``FeatureBlobError``), not run code.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from provenance.lookup.errors import FeatureBlobError, AnalysisInputError

__all__ = ["MAX_KEYPOINTS", "MAX_SIDE", "LocalFeatures", "check_rgb", "extract_features"]

MAX_UPSCALE = 4.0  # see extract_features(upscale_to=...)
MAX_SIDE = 1024  # long side of the copy features are extracted from
MAX_KEYPOINTS = 1500  # the strongest (by DoG response) are kept
CONTRAST_THRESHOLD = 0.015  # OpenCV's default is 0.04; lower keeps keypoints on low-texture photos
MIN_SIDE = 16  # below this SIFT finds nothing useful; the result is simply empty

BLOB_MAGIC = b"PVLF"
BLOB_VERSION = 1
_HEADER = struct.Struct("<4sB")  # magic, version (outside the compression, so a version mismatch reads clearly)
_PAYLOAD_HEAD = struct.Struct("<IIIf")  # width, height, count, descriptor scale
_COORD_MAX = 65535  # keypoint coordinates are stored as uint16 fixed point over the image extent
_DESC_SCALE = 400.0  # RootSIFT components are <= ~0.6; stored as uint8 round(value * scale)
_MAX_BLOB_SIDE = 1 << 20  # refuse absurd sizes in a blob before allocating anything


def check_rgb(rgb: np.ndarray, what: str = "image") -> np.ndarray:
    """Return ``rgb`` if it is an HxWx3 uint8 array, else raise ``AnalysisInputError`` saying what it is."""
    if not isinstance(rgb, np.ndarray):
        raise AnalysisInputError(f"{what} must be a numpy array, not {type(rgb).__name__}")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise AnalysisInputError(f"{what} must be an HxWx3 uint8 RGB array, got shape {rgb.shape} {rgb.dtype}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise AnalysisInputError(f"{what} is empty ({rgb.shape[1]}x{rgb.shape[0]})")
    return rgb


def _frozen(arr: np.ndarray, dtype: type) -> np.ndarray:
    out = np.ascontiguousarray(arr, dtype=dtype)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class LocalFeatures:
    """Keypoints of one image, strongest first, in the original image's pixel frame.

    ``points`` (N, 2) float32 x, y; ``sizes`` (N,) float32 diameter in pixels; ``angles`` (N,) float32 degrees;
    ``descriptors`` (N, 128) float32 RootSIFT (unit L2 norm); ``width``/``height`` the original image size.
    Arrays are read-only so an instance can be shared between threads and cached.
    """

    width: int
    height: int
    points: np.ndarray
    sizes: np.ndarray
    angles: np.ndarray
    descriptors: np.ndarray

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise AnalysisInputError(f"feature image size must be positive, got {self.width}x{self.height}")
        n = len(self.points)
        shapes = {"points": (np.shape(self.points), (n, 2)), "sizes": (np.shape(self.sizes), (n,)),
                  "angles": (np.shape(self.angles), (n,)), "descriptors": (np.shape(self.descriptors), (n, 128))}
        for name, (got, want) in shapes.items():
            if got != want:
                raise AnalysisInputError(f"LocalFeatures.{name} has shape {got}, expected {want}")
        for name in ("points", "sizes", "angles", "descriptors"):
            object.__setattr__(self, name, _frozen(getattr(self, name), np.float32))

    def __len__(self) -> int:
        return len(self.points)

    @classmethod
    def empty(cls, width: int, height: int) -> LocalFeatures:
        """No keypoints (a tiny or featureless image): verification then fails with a reason."""
        return cls(width, height, np.zeros((0, 2)), np.zeros(0), np.zeros(0), np.zeros((0, 128)))

    def to_bytes(self) -> bytes:
        """The versioned, compressed blob (about 140 bytes per keypoint before zlib; see the module docstring)."""
        n = len(self)
        scale = np.array([self.width, self.height], np.float64)
        xy = np.rint(np.clip((self.points + 0.5) / scale, 0.0, 1.0) * _COORD_MAX).astype("<u2")
        desc = np.clip(np.rint(self.descriptors * _DESC_SCALE), 0, 255).astype(np.uint8)
        payload = b"".join((_PAYLOAD_HEAD.pack(self.width, self.height, n, _DESC_SCALE), xy.tobytes(),
                            self.sizes.astype("<f2").tobytes(), self.angles.astype("<f2").tobytes(),
                            desc.tobytes()))
        return _HEADER.pack(BLOB_MAGIC, BLOB_VERSION) + zlib.compress(payload, 6)

    @classmethod
    def from_bytes(cls, blob: bytes) -> LocalFeatures:
        """Read a blob written by ``to_bytes``; raise ``FeatureBlobError`` naming what is wrong with it."""
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise FeatureBlobError(f"feature blob must be bytes, not {type(blob).__name__}")
        blob = bytes(blob)
        if len(blob) < _HEADER.size:
            raise FeatureBlobError(f"feature blob is truncated ({len(blob)} bytes)")
        magic, version = _HEADER.unpack_from(blob)
        if magic != BLOB_MAGIC:
            raise FeatureBlobError(f"not a feature blob (magic {magic!r}, expected {BLOB_MAGIC!r})")
        if version != BLOB_VERSION:
            raise FeatureBlobError(f"feature blob version {version} is not supported (this code reads "
                                   f"version {BLOB_VERSION})")
        try:
            payload = zlib.decompress(blob[_HEADER.size:])
        except zlib.error as exc:
            raise FeatureBlobError(f"feature blob is corrupt: {exc}") from exc
        if len(payload) < _PAYLOAD_HEAD.size:
            raise FeatureBlobError("feature blob payload is truncated")
        width, height, n, desc_scale = _PAYLOAD_HEAD.unpack_from(payload)
        if not (0 < width <= _MAX_BLOB_SIDE and 0 < height <= _MAX_BLOB_SIDE) or not desc_scale > 0:
            raise FeatureBlobError(f"feature blob header is implausible ({width}x{height}, scale {desc_scale})")
        expected = _PAYLOAD_HEAD.size + n * (4 + 2 + 2 + 128)
        if len(payload) != expected:
            raise FeatureBlobError(f"feature blob holds {len(payload)} payload bytes, expected {expected} for {n} "
                                   f"keypoints")
        off = _PAYLOAD_HEAD.size
        xy = np.frombuffer(payload, "<u2", 2 * n, off).reshape(n, 2).astype(np.float64)
        off += 4 * n
        sizes = np.frombuffer(payload, "<f2", n, off).astype(np.float32)
        off += 2 * n
        angles = np.frombuffer(payload, "<f2", n, off).astype(np.float32)
        off += 2 * n
        desc = np.frombuffer(payload, np.uint8, 128 * n, off).reshape(n, 128).astype(np.float32) / desc_scale
        points = xy / _COORD_MAX * np.array([width, height], np.float64) - 0.5
        return cls(width, height, points, sizes, angles, desc)


def _root_sift(desc: np.ndarray) -> np.ndarray:
    desc = desc.astype(np.float32)
    desc /= desc.sum(axis=1, keepdims=True) + 1e-7
    return np.sqrt(desc)


def extract_features(rgb: np.ndarray, *, upscale_to: int = 0) -> LocalFeatures:
    """RootSIFT keypoints of an HxWx3 uint8 RGB image, strongest first, coordinates in its own pixel frame.

    ``upscale_to``: an image whose long side is shorter is first enlarged (bicubic, at most ``MAX_UPSCALE`` times)
    to that long side. Lookup does this for small queries (thumbnails): SIFT's finest octave then lands on detail
    that the original's keypoints, extracted at up to ``MAX_SIDE``, can match (a 128 px re-share of a 1600 px photo:
    15 inliers as is, 41 enlarged to 512).
    """
    rgb = check_rgb(rgb)
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_SIDE:
        return LocalFeatures.empty(width, height)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    scale = min(1.0, MAX_SIDE / max(height, width))
    if upscale_to and max(height, width) < upscale_to:
        scale = min(MAX_UPSCALE, upscale_to / max(height, width))
    if scale != 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC)
    sift = cv2.SIFT_create(nfeatures=MAX_KEYPOINTS, contrastThreshold=CONTRAST_THRESHOLD)
    keypoints, desc = sift.detectAndCompute(grey, None)
    if not keypoints or desc is None:
        return LocalFeatures.empty(width, height)
    order = np.argsort([-kp.response for kp in keypoints], kind="stable")[:MAX_KEYPOINTS]
    kps = [keypoints[i] for i in order]
    sx, sy = width / grey.shape[1], height / grey.shape[0]
    pts = np.array([kp.pt for kp in kps], np.float64)
    points = np.stack([(pts[:, 0] + 0.5) * sx - 0.5, (pts[:, 1] + 0.5) * sy - 0.5], axis=1)
    sizes = np.array([kp.size for kp in kps], np.float32) * float(np.sqrt(sx * sy))
    angles = np.array([kp.angle for kp in kps], np.float32)
    return LocalFeatures(width, height, points, sizes, angles, _root_sift(desc[order]))
