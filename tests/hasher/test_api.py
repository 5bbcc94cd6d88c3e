"""hasher.load(): 64-bit hashes, honest model ids, determinism across runs, processes and batch sizes."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import hasher
from hasher.errors import ImageDecodeError


@pytest.fixture(scope="module")
def oscar():
    return hasher.load(device="cpu")


@pytest.fixture(scope="module")
def photos(shared_photos: Path) -> list[Path]:
    root = shared_photos / "skimage"
    return [root / n for n in ("astronaut.png", "coffee.png", "motorcycle_left.png")]


def test_default_model_is_the_shipped_weights_named_by_their_digest(oscar) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    from hasher.api import SHIPPED_WEIGHTS

    digest = hashlib.sha256(SHIPPED_WEIGHTS.read_bytes()).hexdigest()[:8]
    assert oscar.model_id == f"oscar-v1-{digest}"
    assert isinstance(oscar.threshold, int) and 0 < oscar.threshold < 64


def test_untrained_model_says_so() -> None:
    untrained = hasher.load("untrained", device="cpu")
    assert untrained.model_id.startswith("oscar-untrained-") and untrained.threshold is None


def test_hash_is_64_bits_from_any_input_kind(oscar, photos) -> None:  # type: ignore[no-untyped-def]
    path = photos[1]
    by_path = oscar.hash(path)
    assert len(by_path.hex) == 16 and 0 <= by_path.value < 2**64
    data = path.read_bytes()
    assert oscar.hash(data) == by_path
    assert oscar.hash(Image.open(io.BytesIO(data))) == by_path
    assert oscar.hash(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))) == by_path


def test_same_bits_across_batch_sizes(oscar, photos) -> None:  # type: ignore[no-untyped-def]
    batch = oscar.hash_batch(photos)
    singles = [oscar.hash(p) for p in photos]
    assert batch == singles
    assert len({h.value for h in batch}) == 3  # different images, different codes


def test_same_bits_in_another_process(oscar, photos) -> None:  # type: ignore[no-untyped-def]
    code = ("import torch, hasher; torch.set_num_threads(2); "
            f"print(hasher.load(device='cpu').hash({str(photos[0])!r}).hex)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == oscar.hash(photos[0]).hex


def test_distance(oscar, photos) -> None:  # type: ignore[no-untyped-def]
    a, b = oscar.hash(photos[0]), oscar.hash(photos[1])
    assert oscar.distance(a, a) == 0 and a - b == oscar.distance(a, b) == (a.value ^ b.value).bit_count()


def test_bad_input_is_a_clear_error(oscar) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ImageDecodeError, match="not an image"):
        oscar.hash(b"not an image at all")


def test_tiny_image_hashes(oscar) -> None:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), "red").save(buf, format="PNG")
    assert len(oscar.hash(buf.getvalue()).hex) == 16
