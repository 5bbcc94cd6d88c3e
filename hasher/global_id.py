"""A tamper-tolerant 256-bit identity code: the ImageNet backbone's global descriptor, binarised (issue 7).

OSCAR-Net's code is built to move when content is edited, so lookup needs a second, *tolerant* channel to find the
source of an altered copy. pHash does that for most copies, but a rotated and padded re-share lands 16-26 of its 64
bits away, where a large index holds many closer codes. This code keeps such copies close:

1. the uniform borders are trimmed (``hasher.borders``: padding, plain, coloured or noisy);
2. the rest is resized to ``side`` x ``side`` and run through EfficientNet-Lite0 (the OSCAR global stream's backbone,
   from the same PyPI wheel) together with its mirror image;
3. each feature map is GeM-pooled (p = ``gem_p``) and the two summed: the descriptor is flip-invariant, so no
   mirrored probe is needed; then L2-normalised;
4. centred by the mean descriptor of a photo pool, projected on ``bits`` orthonormal random directions and
   binarised by sign (SimHash): the Hamming distance between two codes estimates the angle between their centred
   descriptors, ``d ~ bits * angle / pi``. Unrelated photos sit near ``bits / 2``; re-shares and edited copies of
   one photo, whose descriptors barely turn, sit far below.

The mean, the projection and the settings live in ``hasher/weights/global_id_v1.safetensors`` (written by
``python -m hasher.global_id fit``; source and sha256 in ``hasher/weights/README.md``). The model id is
``global-id-v1-<sha8 of that file>``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from hasher.backbone import create_backbone, sha256_file
from hasher.borders import inner_box
from hasher.errors import BackboneWeightsError, WeightsIntegrityError
from hasher.io import DEFAULT_MAX_PIXELS, ImageInput, load_rgb

__all__ = ["DEFAULT_SHA256", "DEFAULT_WEIGHTS", "GlobalId", "GlobalIdCode", "fit_projection", "load_global_id"]

DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "global_id_v1.safetensors"
#: sha256 of the shipped file, checked on every load of the default weights (as the other bundled weights are).
DEFAULT_SHA256 = "1b294740729387677eabf87ef3d588074f61389f4b711f63ac2db53c940df9fe"
BACKBONE = "efficientnet_lite0"


@dataclass(frozen=True)
class GlobalIdCode:
    value: int
    model_id: str
    bits: int

    @property
    def hex(self) -> str:
        return f"{self.value:0{self.bits // 4}x}"


class GlobalId:
    """Image -> descriptor -> ``bits``-bit code. ``mean`` [D] and ``projection`` [bits, D] come from the weights."""

    def __init__(self, mean: np.ndarray, projection: np.ndarray, *, side: int, gem_p: float, model_id: str,
                 device: str | torch.device = "cpu", max_pixels: int = DEFAULT_MAX_PIXELS,
                 identity_gate: int | None = None) -> None:
        backbone = create_backbone(BACKBONE)
        if projection.shape[1] != backbone.feature_dim or mean.shape != (backbone.feature_dim,):
            raise BackboneWeightsError(
                f"global-id weights do not fit {BACKBONE}: mean {mean.shape}, projection {projection.shape}")
        self.net = backbone.module.to(device).eval()
        self.device = torch.device(device)
        pre = backbone.preprocessing
        self._norm = (torch.tensor(pre.mean).view(1, 3, 1, 1), torch.tensor(pre.std).view(1, 3, 1, 1))
        self.mean = mean.astype(np.float32)
        self.projection = projection.astype(np.float32)
        self.side = side
        self.gem_p = gem_p
        self.model_id = model_id
        self.bits = int(projection.shape[0])
        self.max_pixels = max_pixels
        #: Hamming distance beyond which two codes are different photos (calibrated on a validation split and
        #: shipped in the weights file, like OSCAR-Net's threshold); None when the file carries none.
        self.identity_gate = identity_gate
        self._lock = threading.Lock()  # torch modules are not documented thread-safe for concurrent inference

    def descriptor(self, image: ImageInput) -> np.ndarray:
        """The L2-normalised, flip-invariant GeM descriptor of what lies inside the image's uniform borders."""
        rgb = load_rgb(image, max_pixels=self.max_pixels)
        x1, y1, x2, y2 = inner_box(rgb)
        content = Image.fromarray(np.ascontiguousarray(rgb[y1:y2, x1:x2]))
        small = np.asarray(content.resize((self.side, self.side), Image.BILINEAR), dtype=np.float32) / 255.0
        x = torch.from_numpy(small).permute(2, 0, 1)[None]
        x = (x - self._norm[0]) / self._norm[1]
        with self._lock, torch.inference_mode():
            maps = self.net.forward_features(torch.cat([x, x.flip(3)]).to(self.device)).float().cpu()
        pooled = maps.clamp_min(1e-6).pow(self.gem_p).mean((2, 3)).pow(1.0 / self.gem_p).sum(0)
        return F.normalize(pooled, dim=0).numpy()

    def project(self, descriptors: np.ndarray) -> np.ndarray:
        """[N, D] (or [D]) descriptors -> [N, bits] projections of the centred descriptors (the code before its
        sign)."""
        d = np.atleast_2d(np.asarray(descriptors, dtype=np.float32))
        return (d - self.mean) @ self.projection.T

    def binarise(self, descriptors: np.ndarray) -> np.ndarray:
        """[N, D] (or [D]) descriptors -> [N, bits] booleans: the signs of :meth:`project`."""
        return self.project(descriptors) > 0

    def code(self, image: ImageInput) -> GlobalIdCode:
        bits = self.binarise(self.descriptor(image))[0]
        value = int.from_bytes(np.packbits(bits).tobytes(), "big")
        return GlobalIdCode(value, self.model_id, self.bits)


_LOADED: dict[str, GlobalId] = {}
_LOAD_LOCK = threading.Lock()


def load_global_id(weights: str | Path | None = None, device: str | None = None) -> GlobalId:
    """The code of the weights file (default: the shipped one, sha256-checked) on ``device`` (default: CUDA when
    available, else CPU); loaded once per process, file and device."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    path = Path(weights) if weights is not None else DEFAULT_WEIGHTS
    key = f"{path.resolve()}@{device}"
    with _LOAD_LOCK:
        if key in _LOADED:
            return _LOADED[key]
        if not path.is_file():
            raise BackboneWeightsError(f"global-id weights not found: {path}")
        digest = sha256_file(path)
        if weights is None and digest != DEFAULT_SHA256:
            raise WeightsIntegrityError(f"sha256 of {path} is {digest}, expected {DEFAULT_SHA256}")
        try:
            tensors = load_file(str(path))
            with safe_open(str(path), "np") as fh:
                meta = fh.metadata() or {}
            settings = json.loads(meta["settings"])
            mean, projection = tensors["mean"], tensors["projection"]
            name, side, gem_p = str(settings["name"]), int(settings["side"]), float(settings["gem_p"])
            gate = None if settings.get("identity_gate") is None else int(settings["identity_gate"])
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own types: any failure is a bad file
            raise WeightsIntegrityError(f"cannot read global-id weights {path}: {exc}") from exc
        gid = GlobalId(mean, projection, side=side, gem_p=gem_p, model_id=f"{name}-{digest[:8]}", device=device,
                       identity_gate=gate)
        _LOADED[key] = gid
        return gid


# --------------------------------------------------------------------------------------------------- fitting


def fit_projection(descriptors: np.ndarray, pairs: np.ndarray, bits: int, seed: int,
                   shrinkage: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Learned discriminative whitening (Radenovic et al., "CNN image retrieval learns from BoW", ECCV 2016),
    then a random rotation, as one ``bits`` x D projection, plus the mean it applies to.

    ``descriptors`` [N, D] are a pool of photos and their variants; ``pairs`` [M, 2] index variants of one photo
    (benign re-shares *and* edits: this channel must find the source of both). The directions in which variants of
    one photo differ are whitened away (their covariance, shrunk towards its mean eigenvalue by ``shrinkage`` so
    that directions the pool never saw vary are not blown up); in that space the ``bits`` directions along which
    the pool's photos differ most are kept, and a seeded random rotation spreads their variance evenly over the
    bits before the sign is taken.
    """
    if descriptors.ndim != 2 or len(descriptors) < 2:
        raise ValueError("fitting needs at least two descriptors")
    dim = descriptors.shape[1]
    if not 0 < bits <= dim or bits % 8:
        raise ValueError(f"bits must be a multiple of 8 in 8..{dim}, got {bits}")
    if len(descriptors) <= bits:
        raise ValueError(f"fitting {bits} bits needs more than {bits} descriptors, got {len(descriptors)}")
    if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) == 0:
        raise ValueError("fitting needs at least one matching pair")
    d = descriptors.astype(np.float64)
    mean = d.mean(0)
    diff = d[pairs[:, 0]] - d[pairs[:, 1]]
    within = diff.T @ diff / len(diff)
    within = (1 - shrinkage) * within + shrinkage * np.trace(within) / dim * np.eye(dim)
    vals, vecs = np.linalg.eigh(within)
    whiten = vecs @ np.diag(vals ** -0.5) @ vecs.T  # within^(-1/2)
    centred = (d - mean) @ whiten.T
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    top = vt[:bits] @ whiten  # [bits, D]
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((bits, bits)))
    rotation = q * np.sign(np.diag(r))  # a unique QR: the rotation depends on the seed only
    return mean.astype(np.float32), np.ascontiguousarray(rotation @ top, dtype=np.float32)


def _dataset_pairs(folder: Path) -> tuple[list[Path], np.ndarray]:
    """Images and (query, reference) index pairs of an attribution dataset folder (its ``pairs.csv``: the format of
    ``provenance bench make-dataset``; read here directly because ``hasher`` never imports ``provenance``)."""
    with open(folder / "pairs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"reference", "query"} <= set(rows[0]):
        raise SystemExit(f"{folder / 'pairs.csv'}: no rows with reference and query columns")
    names = list(dict.fromkeys([r["reference"] for r in rows] + [r["query"] for r in rows]))
    index = {n: i for i, n in enumerate(names)}
    pairs = np.array([(index[r["query"]], index[r["reference"]]) for r in rows], dtype=np.int64)
    return [folder / n for n in names], pairs


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hasher.global_id",
                                 description="Fit (write) the global-id weights file from attribution datasets.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    fit = sub.add_parser("fit")
    fit.add_argument("--dataset", type=Path, action="append", required=True,
                     help="make-dataset folder (repeatable): its references and variants, paired")
    fit.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    fit.add_argument("--bits", type=int, default=256)
    fit.add_argument("--side", type=int, default=224)
    fit.add_argument("--gem-p", type=float, default=3.0)
    fit.add_argument("--shrinkage", type=float, default=0.1)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--name", default="global-id-v1")
    fit.add_argument("--identity-gate", type=int, default=None,
                     help="distance beyond which codes are different photos (calibrate on a validation split)")
    args = ap.parse_args(argv)

    from safetensors.numpy import save_file

    images: list[Path] = []
    pairs = []
    for folder in args.dataset:
        found, found_pairs = _dataset_pairs(folder)
        pairs.append(found_pairs + len(images))
        images += found
    dim = create_backbone(BACKBONE).feature_dim
    probe = GlobalId(np.zeros(dim, np.float32), np.eye(args.bits, dim, dtype=np.float32), side=args.side,
                     gem_p=args.gem_p, model_id="fitting")
    descs = np.stack([probe.descriptor(p) for p in images])
    mean, projection = fit_projection(descs, np.concatenate(pairs), args.bits, args.seed, args.shrinkage)
    pool = hashlib.sha256("\n".join(sorted(sha256_file(p) for p in images)).encode()).hexdigest()
    settings = {"name": args.name, "side": args.side, "gem_p": args.gem_p, "bits": args.bits, "seed": args.seed,
                "shrinkage": args.shrinkage, "identity_gate": args.identity_gate, "backbone": BACKBONE,
                "pool_images": len(images), "pool_pairs": int(sum(len(p) for p in pairs)), "pool_sha256": pool}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file({"mean": mean, "projection": projection}, str(args.out), metadata={"settings": json.dumps(settings)})
    print(f"wrote {args.out} ({len(images)} images, {settings['pool_pairs']} pairs; sha256 {sha256_file(args.out)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
