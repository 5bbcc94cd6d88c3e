"""CPU latency of the object detectors and of GrabCut masks, over the shared photos.

Usage: python benchmarks/detector_latency.py [--photos DIR] [--threads 2] [--maskrcnn-photos 5] [--skip-maskrcnn]

Prints, per image: CenterNet end-to-end ``detect`` (letterbox + network + decode + NMS) median / p95; GrabCut
``segment`` time per object over CenterNet's objects; and Mask R-CNN R50-FPN (torchvision defaults: 800 px short
side) with *random* weights loaded through ``MaskRCNNDetector``, for comparison. Random weights give (almost)
no detections above the 0.05 box threshold, so the Mask R-CNN figure leaves out most of the mask head: a lower
bound of what real COCO weights cost.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hasher.detect.centernet import CenterNetDetector
from hasher.detect.masks import segment

DEFAULT_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"


def load_photos(root: Path) -> dict[str, np.ndarray]:
    photos = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
            photos[str(path.relative_to(root))] = np.asarray(Image.open(path).convert("RGB"))
    return photos


def summary(ms: list[float]) -> str:
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered):7.1f} ms  p95 {p95:7.1f} ms  (n={len(ordered)})"


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return (time.perf_counter() - start) * 1000, out


def bench_centernet(photos: dict[str, np.ndarray]) -> dict[str, list]:
    detector = CenterNetDetector()
    detector.detect(next(iter(photos.values())))  # warm-up: first-call allocations, oneDNN kernel selection
    per_image, found = [], {}
    for name, image in photos.items():
        ms, dets = timed(detector.detect, image)
        per_image.append(ms)
        found[name] = dets
    print(f"CenterNet detect, per image:        {summary(per_image)}")
    ms, _ = timed(detector.detect_batch, list(photos.values())[:8])
    print(f"CenterNet detect_batch of 8:        {ms / 8:7.1f} ms per image")
    return found


def bench_grabcut(photos: dict[str, np.ndarray], found: dict[str, list]) -> None:
    per_object = []
    for name, dets in found.items():
        for det in dets:
            ms, _ = timed(segment, photos[name], [det])
            per_object.append(ms)
    if per_object:
        print(f"GrabCut segment, per object:        {summary(per_object)}")


def bench_maskrcnn(photos: dict[str, np.ndarray], count: int) -> None:
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    from hasher.detect.maskrcnn import MaskRCNNDetector

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "maskrcnn_random.pth"
        torch.save(maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91).state_dict(), path)
        detector = MaskRCNNDetector(path)
    images = list(photos.values())[:count]
    detector.detect(images[0])
    per_image = [timed(detector.detect, image)[0] for image in images]
    print(f"Mask R-CNN (random weights), image: {summary(per_image)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--maskrcnn-photos", type=int, default=5)
    parser.add_argument("--skip-maskrcnn", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    photos = load_photos(args.photos)
    print(f"{len(photos)} photos from {args.photos}; torch {torch.__version__}, {args.threads} threads, CPU")
    found = bench_centernet(photos)
    print(f"  objects found (score >= 0.25, <= 16 per image): {sum(len(d) for d in found.values())}")
    bench_grabcut(photos, found)
    if not args.skip_maskrcnn:
        bench_maskrcnn(photos, args.maskrcnn_photos)


if __name__ == "__main__":
    main()
