"""Write the letterboxed 512x512 network inputs that ``scripts/centernet_reference.mjs`` feeds to TF.js.

Dev tool, step 1 of regenerating ``tests/hasher/data/centernet_reference.json`` (see the .mjs for step 2):

    .venv/bin/python scripts/centernet_reference_inputs.py /work/shared/data/photos /tmp/centernet-ref-inputs

Both implementations then see byte-identical inputs (raw RGB uint8, HWC), so the comparison tests the network
port alone; the input's sha256 goes into the fixture so the test can tell when preprocessing changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from hasher.detect.centernet import letterbox

#: Photos (relative to the shared photos folder) the reference covers: the three sanity images, a cat, a crowded
#: street-like scene, a non-square landscape photo.
PHOTOS = (
    "skimage/astronaut.png",
    "skimage/coffee.png",
    "skimage/motorcycle_left.png",
    "skimage/chelsea.png",
    "kodak24/kodim05.png",
    "kodak24/kodim23.png",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    manifest = []
    for rel in PHOTOS:
        image = np.asarray(Image.open(args.photos_dir / rel).convert("RGB"))
        boxed, _ = letterbox(image)
        raw = np.ascontiguousarray(boxed).tobytes()
        name = rel.replace("/", "__").rsplit(".", 1)[0] + ".rgb"
        (args.out_dir / name).write_bytes(raw)
        manifest.append({"photo": rel, "input": name, "input_sha256": hashlib.sha256(raw).hexdigest()})
    (args.out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(manifest)} inputs to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
