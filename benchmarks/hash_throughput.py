"""Throughput of the full OSCAR-Net hashing pipeline (``hasher.load().hash_batch``) and where its time goes.

Usage: python benchmarks/hash_throughput.py [--photos DIR] [--threads 2] [--batch-sizes 1,4,8,16] [--repeats 1]
                                            [--no-breakdown] [--gpu] [--bridge-mods [DIR]]

* images/s of ``OscarHasher.hash_batch`` end to end (decode from the file bytes included) at each batch size, over
  every photo under ``--photos`` (kodak24, skimage, thorn_perception), after one warm-up call;
* a per-stage breakdown in ms/image, from a loop that calls the very functions ``hash_batch`` calls, with timers
  between them: decode, detect (CenterNet incl. letterbox + NMS), masks and crops (GrabCut + scene-graph build +
  collate), backbone (global CNN + object CNN), transformers (FO + FR + embedders + pooling + fusion);
* the same on CUDA when it is available (or only a note that it is not);
* ``--bridge-mods``: Hamming distance of each variant in pdq's bridge-mods set to ``aaa-orig.jpg``.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

import hasher
from hasher.api import OscarHasher
from hasher.detect.masks import segment
from hasher.io import load_rgb
from hasher.model import OscarNet
from hasher.scene_graph import SceneGraphBatch, build_scene_graph, collate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_PHOTOS = SHARED / "photos"
DEFAULT_BRIDGE = SHARED / "pdq" / "data" / "bridge-mods"
STAGES = ("decode", "detect", "masks+crops", "backbone", "transformers")


def photo_bytes(root: Path) -> list[bytes]:
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    return [p.read_bytes() for p in paths]


def batches(items: Sequence[bytes], size: int) -> list[Sequence[bytes]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _forward_timed(model: OscarNet, batch: SceneGraphBatch, add: Callable[[str, float], None]) -> torch.Tensor:
    """``OscarNet.encode_bits`` split into backbone (both CNNs) and the rest; same operations, same order."""
    device = batch.images.device
    t0 = time.perf_counter()
    z_g = model.global_cnn(batch.images)
    valid = ~batch.node_padding
    feats = model.object_cnn(batch.crops[valid])
    _sync(device)
    t1 = time.perf_counter()
    visual = batch.shape.new_zeros((*valid.shape, model.config.d_visual))
    visual[valid] = model.visual_embed(feats)
    nodes = torch.cat([visual, model.shape_embed(batch.shape), model.geometry_embed(batch.geometry)], dim=-1)
    nodes = nodes.masked_fill(batch.node_padding.unsqueeze(-1), 0.0)
    z_o = model.object_stream(nodes, batch.node_padding)
    z_r = model.relation_stream(model.relation_tokens(nodes, batch), batch.edge_padding)
    bits = model.fuse(torch.cat([z_g, z_o, z_r], dim=-1)) >= 0
    _sync(device)
    t2 = time.perf_counter()
    add("backbone", t1 - t0)
    add("transformers", t2 - t1)
    return bits


@torch.inference_mode()
def staged_hash_batch(oscar: OscarHasher, images: Sequence[bytes], add: Callable[[str, float], None]) -> torch.Tensor:
    """What ``OscarHasher.hash_batch`` does, with a timer around every stage."""
    cfg = oscar.config
    t = time.perf_counter()
    rgbs = [load_rgb(im, max_pixels=oscar.max_pixels) for im in images]
    add("decode", time.perf_counter() - t)
    graphs = []
    for rgb in rgbs:
        t = time.perf_counter()
        detections = oscar.detector.detect(rgb, max_objects=cfg.max_objects)
        _sync(oscar.device)
        t2 = time.perf_counter()
        objects = segment(rgb, detections, work_size=cfg.grabcut_size, iterations=cfg.grabcut_iterations)
        graphs.append(build_scene_graph(rgb, objects, cfg))
        add("detect", t2 - t)
        add("masks+crops", time.perf_counter() - t2)
    groups = [[g] for g in graphs] if oscar.device.type == "cpu" else [graphs]
    out = []
    for group in groups:
        t = time.perf_counter()
        batch = collate(group).to(oscar.device)
        add("masks+crops", time.perf_counter() - t)
        out.append(_forward_timed(oscar.model, batch, add))
    return torch.cat(out)


def bench(oscar: OscarHasher, photos: list[bytes], batch_sizes: list[int], repeats: int, breakdown: bool) -> None:
    oscar.hash_batch(photos[:2])  # warm-up: oneDNN kernel choice, first-call allocations
    n = len(photos)
    print(f"device {oscar.device}, {n} photos, torch threads {torch.get_num_threads()}, model {oscar.model_id}")
    for size in batch_sizes:
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for chunk in batches(photos, size):
                oscar.hash_batch(chunk)
            _sync(oscar.device)
            best = min(best, time.perf_counter() - start)
        print(f"  batch {size:3d}: {n / best:6.2f} images/s  ({1000 * best / n:7.1f} ms/image)")
    if not breakdown:
        return
    size = max(batch_sizes)
    totals: dict[str, float] = defaultdict(float)

    def add(stage: str, seconds: float) -> None:
        totals[stage] += seconds

    for chunk in batches(photos, size):
        staged_hash_batch(oscar, chunk, add)
    total = sum(totals.values())
    print(f"  stage breakdown (batch {size}), ms/image:")
    for stage in STAGES:
        print(f"    {stage:13s} {1000 * totals[stage] / n:7.1f}  ({100 * totals[stage] / total:4.1f}%)")
    print(f"    {'total':13s} {1000 * total / n:7.1f}  -> {n / total:.2f} images/s")


def bridge_mods(oscar: OscarHasher, root: Path) -> None:
    paths = sorted(p for p in root.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    orig = next(p for p in paths if p.name == "aaa-orig.jpg")
    hashes = dict(zip(paths, oscar.hash_batch([p.read_bytes() for p in paths]), strict=True))
    print(f"bridge-mods Hamming distance to {orig.name} ({oscar.model_id}, {oscar.device}):")
    for p in paths:
        if p != orig:
            print(f"  {p.name:24s} {hashes[p] - hashes[orig]:3d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", default="1,4,8,16")
    parser.add_argument("--repeats", type=int, default=1, help="passes per batch size; the fastest is reported")
    parser.add_argument("--no-breakdown", action="store_true")
    parser.add_argument("--gpu", action=argparse.BooleanOptionalAction, default=True,
                        help="also benchmark on CUDA when available (default on)")
    parser.add_argument("--bridge-mods", nargs="?", type=Path, const=DEFAULT_BRIDGE, default=None,
                        help="print Hamming distances of the bridge-mods variants (optional DIR)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    photos = photo_bytes(args.photos)
    cpu = hasher.load(device="cpu")
    print("== CPU ==")
    bench(cpu, photos, sizes, args.repeats, not args.no_breakdown)
    if args.bridge_mods:
        bridge_mods(cpu, args.bridge_mods)
    if args.gpu:
        if torch.cuda.is_available():
            print(f"== CUDA ({torch.cuda.get_device_name()}) ==")
            bench(hasher.load(device="cuda"), photos, sizes, args.repeats, not args.no_breakdown)
        else:
            print("== CUDA: not available on this machine ==")


if __name__ == "__main__":
    main()
