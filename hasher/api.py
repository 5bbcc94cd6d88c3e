"""The inference API: ``hasher.load() -> OscarHasher`` with ``.hash``, ``.hash_batch`` and ``.distance``.

Pipeline per image: decode (EXIF-aware) -> detect objects -> GrabCut masks -> scene graph -> OSCAR-Net -> 64 bits.

Determinism: on CPU each image runs through the detector and the network on its own, so its bits cannot depend on
which other images share the call (batched float reductions may round differently); on a GPU images are batched.

Honest model ids: until trained weights ship, ``load()`` builds the network on the pretrained backbone and detector
with heads initialised from a fixed seed, and its id starts ``oscar-untrained-``. Trained weights get
``oscar-<sha8 of the weights file>``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from hasher.config import OscarConfig
from hasher.detect import ObjectDetector, create_detector
from hasher.detect.masks import segment
from hasher.errors import ConfigError
from hasher.io import DEFAULT_MAX_PIXELS, ImageInput, load_rgb
from hasher.model import OscarNet, codes_to_ints, load_checkpoint
from hasher.scene_graph import build_scene_graph, collate

UNTRAINED_SEED = 0


@dataclass(frozen=True)
class ImageHash:
    value: int
    model_id: str
    bits: int = 64

    @property
    def hex(self) -> str:
        return f"{self.value:0{self.bits // 4}x}"

    def __sub__(self, other: ImageHash) -> int:
        return OscarHasher.distance(self, other)


class OscarHasher:
    def __init__(self, model: OscarNet, detector: ObjectDetector, model_id: str, device: torch.device,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.model = model.to(device).eval()
        self.detector = detector
        self.model_id = model_id
        self.device = device
        self.max_pixels = max_pixels
        self.config: OscarConfig = model.config

    @torch.inference_mode()
    def hash_batch(self, images: Sequence[ImageInput]) -> list[ImageHash]:
        rgbs = [load_rgb(im, max_pixels=self.max_pixels) for im in images]
        graphs = []
        for rgb in rgbs:
            detections = self.detector.detect(rgb, max_objects=self.config.max_objects) if self.config.needs_objects else []
            objects = segment(rgb, detections, work_size=self.config.grabcut_size,
                              iterations=self.config.grabcut_iterations)
            graphs.append(build_scene_graph(rgb, objects, self.config))
        if self.device.type == "cpu":
            bits = torch.cat([self.model.encode_bits(collate([g]).to(self.device)) for g in graphs]) if graphs else None
        else:
            bits = self.model.encode_bits(collate(graphs).to(self.device)) if graphs else None
        if bits is None:
            return []
        return [ImageHash(v, self.model_id, self.config.code_bits) for v in codes_to_ints(bits)]

    def hash(self, image: ImageInput) -> ImageHash:
        return self.hash_batch([image])[0]

    @staticmethod
    def distance(a: ImageHash | int, b: ImageHash | int) -> int:
        va = a.value if isinstance(a, ImageHash) else a
        vb = b.value if isinstance(b, ImageHash) else b
        return (va ^ vb).bit_count()


def _default_device(device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def untrained_model_id(config: OscarConfig, detector: ObjectDetector) -> str:
    from hasher.backbone import LITE0_SHA256

    ident = json.dumps({"config": config.to_dict(), "backbone": LITE0_SHA256, "detector": detector.model_id,
                        "seed": UNTRAINED_SEED, "torch": torch.__version__.split("+")[0]}, sort_keys=True)
    return "oscar-untrained-" + hashlib.sha256(ident.encode()).hexdigest()[:8]


def _create_detector(name: str, device: torch.device, config: OscarConfig) -> ObjectDetector:
    # CenterNet runs at the config's letterbox size; Mask R-CNN keeps its own (torchvision) resizing.
    kwargs = {"input_size": config.detect_size} if name == "centernet" else {}
    return create_detector(name, device=device, **kwargs)


# The paper's ablations (Table 1), as ``hasher.load(variant=NAME)``; the attribution benchmark registers each.
OSCAR_VARIANTS = ("cnn-only", "no-relations", "no-global")
_VARIANT_STREAMS = {"cnn-only": ("global",), "no-relations": ("global", "objects"), "no-global": ("objects", "relations")}


def load(weights: str | Path | None = None, device: str | torch.device | None = None, *,
         detector: str = "centernet", config: OscarConfig | None = None, variant: str | None = None) -> OscarHasher:
    """Build the hasher. ``weights``: a checkpoint saved by ``hasher.model.save_checkpoint``; ``None``: untrained
    heads on the pretrained backbone (reproducible: seeded), with an ``oscar-untrained-`` id."""
    dev = _default_device(device)
    if weights is not None:
        if variant is not None:
            raise ConfigError("a checkpoint fixes its own streams: give weights or variant, not both")
        path = Path(weights)
        model = load_checkpoint(path)
        model_id = "oscar-" + hashlib.sha256(path.read_bytes()).hexdigest()[:8]
        det = _create_detector(detector, dev, model.config)
    else:
        cfg = config or OscarConfig()
        if variant is not None:
            if variant not in _VARIANT_STREAMS:
                raise ConfigError(f"unknown variant {variant!r}; known: {', '.join(OSCAR_VARIANTS)}")
            cfg = cfg.replace(streams=_VARIANT_STREAMS[variant])
        det = _create_detector(detector, dev, cfg)
        state = torch.random.get_rng_state()
        torch.manual_seed(UNTRAINED_SEED)
        try:
            model = OscarNet(cfg)
        finally:
            torch.random.set_rng_state(state)
        model_id = untrained_model_id(cfg, det)
    return OscarHasher(model, det, model_id, dev)
