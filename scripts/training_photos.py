"""Collect the offline photos OSCAR-Net trains and validates on into train / val / test folders, reproducibly.

Sources (installed by scripts/install-training-data.sh; licences recorded in its SOURCES.md):
* Debian wallpaper packages with photos: plasma-workspace-wallpapers (largest size of each), lomiri-wallpapers,
  mate-backgrounds (nature + the Elephants photo). Training only. A wide wallpaper gives its two
  non-overlapping halves, each a separate original.
* ../shared/data/photos (kodak24, skimage, thorn_perception): split by a fixed rule, 40 % to training, 25 % to
  validation (model selection, calibration) and 35 % to test (the reported benchmark). No photo is in two splits.

Usage: python scripts/training_photos.py [--out benchmarks/out/training-photos] [--shared ../shared/data/photos]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

from PIL import Image

WALLPAPER_ROOTS = ("/usr/share/wallpapers", "/usr/share/backgrounds")
SKIP_WORDS = ("screenshot", "stripes", "ubuntu-mate", "float-into", "arc-colors", "gulp", "silk", "spring", "waves",
              "flow.png", "gnome/")
MAX_SIDE = 1600


def _wallpapers() -> list[Path]:
    found: dict[str, Path] = {}
    for root in map(Path, WALLPAPER_ROOTS):
        if not root.is_dir():
            continue
        for p in sorted(root.rglob("*")):
            if p.suffix.lower() not in (".jpg", ".jpeg", ".png") or any(w in str(p).lower() for w in SKIP_WORDS):
                continue
            # plasma: <name>/contents/images/<WxH>.jpg -> keep the largest per <name>
            key = p.parts[4] if str(p).startswith("/usr/share/wallpapers/") else str(p)
            key = key.replace("_3840x2160", "").replace("_5640x3172", "")
            with Image.open(p) as im:
                size = im.size[0] * im.size[1]
            if key not in found or size > _area(found[key]):
                found[key] = p
    return [found[k] for k in sorted(found)]


def _area(p: Path) -> int:
    with Image.open(p) as im:
        return im.size[0] * im.size[1]


def _crops(im: Image.Image) -> list[Image.Image]:
    """Wide images (aspect >= 1.5) give their two non-overlapping halves; others stay whole."""
    w, h = im.size
    if w < 1.5 * h:
        return [im]
    return [im.crop((0, 0, w // 2, h)), im.crop((w - w // 2, 0, w, h))]


def _save(im: Image.Image, dest: Path) -> None:
    im = im.convert("RGB")
    im.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    dest.parent.mkdir(parents=True, exist_ok=True)
    im.save(dest, quality=95)


def shared_split(name: str) -> str:
    """Fixed split of a shared photo by the hash of its relative path: 40 % train, 25 % val, 35 % test."""
    bucket = int(hashlib.sha256(name.encode()).hexdigest(), 16) % 20
    return "train" if bucket < 8 else ("val" if bucket < 13 else "test")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/out/training-photos")
    ap.add_argument("--shared", default="../shared/data/photos")
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    counts = {"train": 0, "val": 0, "test": 0}
    for p in _wallpapers():
        with Image.open(p) as im:
            for i, crop in enumerate(_crops(im)):
                slug = "_".join(p.parts[3:]).replace(".", "_")
                _save(crop, out / "train" / "wallpapers" / f"{slug}_{i}.jpg")
                counts["train"] += 1
    shared = Path(args.shared)
    for p in sorted(shared.rglob("*")):
        if p.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        rel = p.relative_to(shared).as_posix()
        split = shared_split(rel)
        dest = out / split / "shared" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dest)
        counts[split] += 1
    print(counts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
