"""Conformance vectors: the codes our hashers give to 50 public images, so that anyone can check an implementation.

``vectors.json`` (beside this file) names each input by its path under the shared data folder (``../shared/data``
from the repository root; the images are not copied here) with its sha256, and gives, per image, the code of every
shipped model: each OSCAR-Net weights file in ``hasher/weights`` (``oscar_*.safetensors``; the default one marked),
the global identity code and pHash (all three are soft bindings a record carries). For the two learned codes it also
gives the smallest |pre-sign value| over the code's bits (the *margin*) and the bits whose value lies within
``FRAGILE`` of zero: float noise (another thread count, BLAS or GPU) can flip those and no others.

``python -m hasher.conformance generate`` writes the file; ``python -m hasher.conformance check`` recomputes the codes
(``--device cuda`` on a GPU) or reads a third party's (``--codes FILE``) and reports, per image and model, how many
bits differ. See README.md here. Everything in this module is pure except :func:`compute` (which runs the models)
and the file helpers.
"""

from __future__ import annotations

import csv
import hashlib
import json
import platform
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_DATA", "FORMAT", "FRAGILE", "SELECTION", "VECTORS", "Difference", "ModelSpec", "compare",
           "compute", "load_vectors", "read_codes", "selected_paths", "shipped_models"]

FORMAT = "hasher-conformance/1"
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VECTORS = HERE / "vectors.json"
#: The shared data folder, as the repository's tests find it (``../shared/data`` beside the checkout).
DEFAULT_DATA = REPO.parent / "shared" / "data"
#: |pre-sign value| under which a bit is recorded as fragile (the codes' median |value| is ~0.4 for OSCAR-Net).
FRAGILE = 1e-3

#: The fixed selection, as globs under the data folder, in this order (50 images): every scikit-image sample (15:
#: greyscale, 16-bit, odd sizes), every thorn-oss/perception photo (10: large JPEGs), every PDQ bridge-mod (12: one
#: photo under benign edits, so codes close to each other) and the first 13 Kodak photos (kodim01-13).
SELECTION: tuple[str, ...] = ("photos/skimage/*", "photos/thorn_perception/*.jpg", "pdq/data/bridge-mods/*.jpg",
                              *(f"photos/kodak24/kodim{i:02d}.png" for i in range(1, 14)))


def selected_paths(data: Path) -> list[str]:
    """The selection's paths relative to ``data`` (POSIX), in selection order, each pattern's matches sorted."""
    out: list[str] = []
    for pattern in SELECTION:
        matches = sorted(p.relative_to(data).as_posix() for p in data.glob(pattern) if p.is_file()
                         and p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if not matches:
            raise FileNotFoundError(f"no image matches {pattern} under {data}")
        out += [m for m in matches if m not in out]
    return out


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ModelSpec:
    """One model whose codes the vectors hold. ``weights`` is relative to the repository root (None: no file)."""

    model_id: str
    alg: str
    bits: int
    weights: str | None = None
    weights_sha256: str | None = None
    default: bool = False

    def to_obj(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "alg": self.alg, "bits": self.bits, "weights": self.weights,
                "weights_sha256": self.weights_sha256, "default": self.default}

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> ModelSpec:
        return cls(str(obj["model_id"]), str(obj["alg"]), int(obj["bits"]), obj.get("weights"),
                   obj.get("weights_sha256"), bool(obj.get("default", False)))


def _rel(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return str(path)


def shipped_models(extra_oscar: Sequence[Path] = ()) -> list[ModelSpec]:
    """Every OSCAR-Net weights file shipped in ``hasher/weights`` (plus ``extra_oscar``), the global identity code
    and pHash. Reads the weights' metadata only."""
    from hasher.api import SHIPPED_WEIGHTS, read_head_weights
    from hasher.global_id import DEFAULT_SHA256 as GID_SHA256
    from hasher.global_id import DEFAULT_WEIGHTS as GID_WEIGHTS
    from hasher.phash import PHASH_MODEL_ID

    files = sorted(SHIPPED_WEIGHTS.parent.glob("oscar_*.safetensors")) + [Path(p) for p in extra_oscar]
    specs = []
    for path in dict.fromkeys(p.resolve() for p in files):
        head = read_head_weights(path)
        specs.append(ModelSpec(head.model_id, "oscar-net", head.config.code_bits, _rel(path),
                               sha256_bytes(path.read_bytes()), path == SHIPPED_WEIGHTS.resolve()))
    gid_meta = json.loads(_safetensors_metadata(GID_WEIGHTS)["settings"])
    specs.append(ModelSpec(f"{gid_meta['name']}-{GID_SHA256[:8]}", "global-id", int(gid_meta["bits"]),
                           _rel(GID_WEIGHTS), GID_SHA256, True))
    specs.append(ModelSpec(PHASH_MODEL_ID, "phash", 64, None, None, True))
    return specs


def _safetensors_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), "np") as fh:
        return dict(fh.metadata() or {})


# --------------------------------------------------------------------------------------------------- computing


@dataclass(frozen=True)
class Code:
    hex: str
    margin: float | None = None  # smallest |pre-sign value| (None: not a thresholded projection we can see)
    fragile: tuple[int, ...] = ()  # bit positions (0 = most significant) with |value| < FRAGILE


def _from_values(values: Sequence[float], bits: Sequence[bool]) -> Code:
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    mags = [abs(float(v)) for v in values]
    return Code(f"{value:0{len(bits) // 4}x}", min(mags), tuple(i for i, m in enumerate(mags) if m < FRAGILE))


def coder_for(spec: ModelSpec, device: str, *, margins: bool = True) -> Callable[[bytes], Code]:
    """A function image bytes -> :class:`Code` for one model, computed exactly as the service hashes an upload
    (``OscarHasher.hash``, ``GlobalId.code``, ``phash64`` on the file's bytes); with ``margins``, also the pre-sign
    values (a second pass for OSCAR-Net). Raises ``FileNotFoundError`` when the model's weights are not in this
    checkout."""
    import torch

    if spec.weights is not None and not (REPO / spec.weights).is_file():
        raise FileNotFoundError(f"{spec.model_id}: weights {spec.weights} are not in this checkout")
    if spec.alg == "oscar-net":
        import hasher
        from hasher.scene_graph import collate

        h = hasher.load(REPO / spec.weights, device=device) if spec.weights else hasher.load(device=device)
        if h.model_id != spec.model_id:
            raise ValueError(f"weights {spec.weights} give model id {h.model_id}, the vectors {spec.model_id}")

        def oscar(data: bytes) -> Code:
            code = h.hash(data)
            if not margins:
                return Code(code.hex)
            with torch.inference_mode():  # the same graph and network as hash_batch, to read z before its sign
                z = h.model(collate([h.scene_graph(data)]).to(h.device)).z[0].float().cpu()
            out = _from_values(z.tolist(), (z >= 0).tolist())
            if out.hex != code.hex:  # cannot happen on CPU (same calls); on a GPU batching may differ
                return Code(code.hex, None, ())
            return out

        return oscar
    if spec.alg == "global-id":
        from hasher.global_id import DEFAULT_WEIGHTS, load_global_id

        path = REPO / spec.weights if spec.weights else DEFAULT_WEIGHTS
        # the shipped file is loaded as the service loads it (None: sha256-checked on load)
        gid = load_global_id(None if path.resolve() == DEFAULT_WEIGHTS.resolve() else path, device=device)
        if gid.model_id != spec.model_id:
            raise ValueError(f"weights {spec.weights} give model id {gid.model_id}, the vectors {spec.model_id}")

        def global_id(data: bytes) -> Code:
            code = gid.code(data)
            if not margins:
                return Code(code.hex)
            z = gid.project(gid.descriptor(data))[0]
            out = _from_values(z.tolist(), (z > 0).tolist())
            return out if out.hex == code.hex else Code(code.hex, None, ())

        return global_id
    if spec.alg == "phash":
        from hasher.phash import phash64

        return lambda data: Code(f"{phash64(data):016x}")
    raise ValueError(f"unknown alg {spec.alg!r}")


def compute(data_root: Path, paths: Sequence[str], specs: Sequence[ModelSpec], *, device: str = "cpu",
            margins: bool = True, progress: Callable[[str], None] | None = None) -> dict[str, dict[str, Code]]:
    """path -> model id -> code, for every model whose weights are here (the others are left out)."""
    coders: dict[str, Callable[[bytes], Code]] = {}
    for spec in specs:
        try:
            coders[spec.model_id] = coder_for(spec, device, margins=margins)
        except FileNotFoundError as exc:
            if progress:
                progress(f"skipped: {exc}")
    out: dict[str, dict[str, Code]] = {}
    for rel in paths:
        data = (data_root / rel).read_bytes()
        out[rel] = {mid: coder(data) for mid, coder in coders.items()}
        if progress:
            progress(rel)
    return out


def environment(device: str, threads: int) -> dict[str, Any]:
    import cv2
    import numpy as np
    import PIL
    import torch

    return {"python": platform.python_version(), "machine": platform.machine(), "torch": torch.__version__,
            "numpy": np.__version__, "opencv": cv2.__version__, "pillow": PIL.__version__, "device": device,
            "torch_threads": threads}


def vectors_obj(data_root: Path, paths: Sequence[str], specs: Sequence[ModelSpec],
                codes: dict[str, dict[str, Code]], env: dict[str, Any]) -> dict[str, Any]:
    images = []
    for rel in paths:
        raw = (data_root / rel).read_bytes()
        row: dict[str, Any] = {"path": rel, "sha256": sha256_bytes(raw), "bytes": len(raw), "codes": {},
                               "margins": {}, "fragile_bits": {}}
        for mid, code in codes[rel].items():
            row["codes"][mid] = code.hex
            if code.margin is not None:
                row["margins"][mid] = round(code.margin, 6)
                row["fragile_bits"][mid] = list(code.fragile)
        images.append(row)
    return {"format": FORMAT, "data_root": "../shared/data (beside the repository; see README.md for sources)",
            "selection": list(SELECTION), "fragile_below": FRAGILE, "generated_with": env,
            "models": [s.to_obj() for s in specs if any(s.model_id in c for c in codes.values())],
            "images": images}


def load_vectors(path: Path = VECTORS) -> dict[str, Any]:
    obj = json.loads(Path(path).read_text(encoding="utf-8"))
    if obj.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} file")
    return obj


# -------------------------------------------------------------------------------------------------- comparing


@dataclass(frozen=True)
class Difference:
    """One (image, model) of the vectors against another implementation's code."""

    path: str
    model_id: str
    expected: str
    got: str | None  # None: no code given / computed for it
    bits: int | None  # differing bits (None when there is nothing to compare)
    fragile: tuple[int, ...] = ()  # the expected code's fragile bits
    flipped: tuple[int, ...] = field(default_factory=tuple)  # positions that differ
    note: str = ""

    @property
    def only_fragile(self) -> bool:
        return bool(self.flipped) and set(self.flipped) <= set(self.fragile)


def flipped_bits(a: str, b: str) -> tuple[int, ...]:
    width = len(a) * 4
    x = int(a, 16) ^ int(b, 16)
    return tuple(i for i in range(width) if x >> (width - 1 - i) & 1)


def compare(vectors: dict[str, Any], got: dict[str, dict[str, str]], *, models: Iterable[str] | None = None,
            bad_inputs: dict[str, str] | None = None) -> list[Difference]:
    """Every (image, model) of the vectors against ``got`` (path -> model id -> hex). Pure."""
    wanted = set(models) if models is not None else None
    bad_inputs = bad_inputs or {}
    out = []
    for row in vectors["images"]:
        for mid, expected in row["codes"].items():
            if wanted is not None and mid not in wanted:
                continue
            fragile = tuple(row.get("fragile_bits", {}).get(mid, ()))
            if row["path"] in bad_inputs:
                out.append(Difference(row["path"], mid, expected, None, None, fragile, (), bad_inputs[row["path"]]))
                continue
            code = got.get(row["path"], {}).get(mid)
            if code is None:
                out.append(Difference(row["path"], mid, expected, None, None, fragile, (), "no code"))
                continue
            code = code.strip().lower()
            if len(code) != len(expected):
                out.append(Difference(row["path"], mid, expected, code, None, fragile, (),
                                      f"{len(code) * 4}-bit code, expected {len(expected) * 4}"))
                continue
            flips = flipped_bits(expected, code)
            out.append(Difference(row["path"], mid, expected, code, len(flips), fragile, flips))
    return out


def read_codes(path: Path) -> dict[str, dict[str, str]]:
    """A third party's codes: JSON lines ``{"path", "model_id", "hex"}`` or CSV with those columns."""
    text = Path(path).read_text(encoding="utf-8")
    rows: list[dict[str, str]]
    if text.lstrip().startswith("{"):
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        rows = list(csv.DictReader(text.splitlines()))
    out: dict[str, dict[str, str]] = {}
    for r in rows:
        if not {"path", "model_id", "hex"} <= set(r):
            raise ValueError(f"{path}: each row needs path, model_id and hex, got {sorted(r)}")
        out.setdefault(str(r["path"]), {})[str(r["model_id"])] = str(r["hex"])
    return out
