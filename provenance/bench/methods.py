"""Registry of hash methods compared by the benchmark: classical perceptual hashes and the OSCAR-Net hook.

Every method maps an image to a fixed number of bits; the benchmark stores them packed (``np.packbits``, MSB first)
and compares them by Hamming distance. ``model_id`` names the exact algorithm + library version, so cached hashes
are never mixed across versions.

Classical methods (64 bits unless said): ``ahash``, ``dhash``, ``phash``, ``whash``, ``colorhash`` (imagehash),
``iscc`` (ISCC image content code, iscc-core), ``pdq`` (256 bits, pdqhash), ``phash-ours`` (``hasher.phash64``).

colorHash at 64 bits: imagehash's colorhash gives 14 bins x ``binbits`` bits. We take ``binbits=5`` (70 bits) and
drop the last (least significant, ``v mod 2``) bit of each of the 6 bright-colour hue bins: 8*5 + 6*4 = 64 bits.
That keeps all 14 bins (truncating to the first 64 bits would delete a whole hue bin), at 5-bit resolution for the
black, grey and faint-colour bins and 4-bit for the bright hues.

ISCC: the image is normalised as ISCC does (greyscale, 32x32 bicubic) and ``soft_hash_image_v0(pixels, 64)`` taken.

OSCAR hook: if ``hasher.load`` exists, method ``oscar`` is registered; ``hasher.load(**kw)`` (``kw`` from
``configure_oscar``, e.g. ``weights=PATH``) must return an object with ``.hash_batch(list[PIL.Image RGB])``
(returning objects with ``.value`` or ints, MSB-first; or a bool/0-1 array ``[B, bits]``; or packed uint8
``[B, bits/8]``; numpy or torch) and ``.model_id`` (bits from ``.bits``/``.code_bits``/``.config.code_bits``, else
64). Ablations: ``hasher.OSCAR_VARIANTS`` may be a dict name -> ``hasher.load`` kwargs, or a list of names passed as
``hasher.load(variant=name)``; each registers as ``oscar-<name>``. Models are opt-in (``--methods oscar,...`` or
``all``): the default set is the classical one. All of it is lazy and fault-tolerant: a missing or failing model
only removes that method (with the reason in run.json), never the run.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

ImageSource = str | Path | bytes | Image.Image
BitsFn = Callable[[Image.Image], np.ndarray]
BatchFn = Callable[[list[Image.Image]], np.ndarray]


def open_image(src: ImageSource) -> Image.Image:
    """Decode any accepted source to an RGB PIL image."""
    if isinstance(src, Image.Image):
        img = src
    elif isinstance(src, (bytes, bytearray, memoryview)):
        img = Image.open(io.BytesIO(bytes(src)))
    else:
        img = Image.open(src)
    img.load()
    if img.mode == "P" and "transparency" in img.info:  # via RGBA, as Pillow asks (else it warns per image)
        img = img.convert("RGBA")
    return img if img.mode == "RGB" else img.convert("RGB")


@dataclass(frozen=True)
class HashMethod:
    """One hash method. ``bits_fn`` maps an RGB image to a bool vector of ``bits``; ``batch_fn`` (optional) maps a
    list of images to packed codes at once (for neural models that batch)."""

    name: str
    bits: int
    model_id: str
    bits_fn: BitsFn | None = None
    batch_fn: BatchFn | None = None

    @property
    def n_bytes(self) -> int:
        return (self.bits + 7) // 8

    def hash(self, src: ImageSource) -> np.ndarray:
        """Packed code (uint8, ``n_bytes``) of one image (path, encoded bytes or PIL image)."""
        return self.hash_many([open_image(src)])[0]

    def hash_many(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Packed codes ``(len(images), n_bytes)`` of decoded RGB images."""
        if self.batch_fn is not None:
            out = np.asarray(self.batch_fn(list(images)), dtype=np.uint8).reshape(len(images), self.n_bytes)
            return out
        if self.bits_fn is None:
            raise TypeError(f"method {self.name} has neither bits_fn nor batch_fn")
        out = np.empty((len(images), self.n_bytes), dtype=np.uint8)
        for i, img in enumerate(images):
            bits = np.asarray(self.bits_fn(img), dtype=bool).ravel()
            if bits.size != self.bits:
                raise ValueError(f"{self.name} produced {bits.size} bits, expected {self.bits}")
            out[i] = np.packbits(bits)
        return out


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


# --- classical methods --------------------------------------------------------------------------------------------

def _imagehash_method(name: str, func_name: str) -> HashMethod:
    import imagehash

    func = getattr(imagehash, func_name)
    return HashMethod(name, 64, f"imagehash-{_version('ImageHash')}/{func_name}-8",
                      lambda img: func(img, hash_size=8).hash.ravel())


def colorhash64_bits(img: Image.Image) -> np.ndarray:
    """imagehash colorhash(binbits=5) reduced to 64 bits (see module docstring)."""
    import imagehash

    bits = imagehash.colorhash(img, binbits=5).hash  # (14, 5) bool, row = bin
    return np.concatenate([bits[:8].ravel(), bits[8:, :4].ravel()])


def _colorhash_method() -> HashMethod:
    return HashMethod("colorhash", 64, f"imagehash-{_version('ImageHash')}/colorhash-b5-drop6lsb", colorhash64_bits)


def iscc_bits(img: Image.Image) -> np.ndarray:
    from iscc_core import soft_hash_image_v0

    pixels = np.asarray(img.convert("L").resize((32, 32), Image.Resampling.BICUBIC)).ravel().tolist()
    return np.unpackbits(np.frombuffer(soft_hash_image_v0(pixels, bits=64), dtype=np.uint8)).astype(bool)


def _iscc_method() -> HashMethod:
    return HashMethod("iscc", 64, f"iscc-core-{_version('iscc-core')}/image-v0-64", iscc_bits)


def pdq_bits(img: Image.Image) -> np.ndarray:
    import pdqhash

    bits, _quality = pdqhash.compute(np.asarray(img, dtype=np.uint8))
    return np.asarray(bits, dtype=bool)


def _pdq_method() -> HashMethod:
    return HashMethod("pdq", 256, f"pdqhash-{_version('pdqhash')}/pdq-256", pdq_bits)


def int_to_bits(value: int, bits: int) -> np.ndarray:
    """Unsigned int -> bool vector, most significant bit first."""
    return np.array([(value >> (bits - 1 - i)) & 1 for i in range(bits)], dtype=bool)


def _phash_ours_method() -> HashMethod:
    from hasher import PHASH_MODEL_ID, phash64

    return HashMethod("phash-ours", 64, f"hasher/{PHASH_MODEL_ID}", lambda img: int_to_bits(phash64(img), 64))


# --- OSCAR-Net hook -----------------------------------------------------------------------------------------------

def codes_from_model_output(out: Any, n: int, bits: int) -> np.ndarray:
    """Normalise whatever ``hash_batch`` returns into packed uint8 ``(n, bits/8)``."""
    if hasattr(out, "detach"):  # torch tensor
        out = out.detach().cpu().numpy()
    if isinstance(out, (list, tuple)) and out and hasattr(out[0], "value"):  # hasher.api.ImageHash objects
        out = [int(h.value) for h in out]
    if isinstance(out, (list, tuple)) and out and isinstance(out[0], (int, np.integer)):
        return np.stack([np.packbits(int_to_bits(int(v), bits)) for v in out])
    arr = np.asarray(out)
    if arr.ndim == 2 and arr.shape == (n, bits):
        return np.packbits(arr.astype(bool), axis=1)
    if arr.ndim == 2 and arr.dtype == np.uint8 and arr.shape == (n, (bits + 7) // 8):
        return arr
    raise ValueError(f"cannot interpret model output of shape {arr.shape} / {arr.dtype} as {n} codes of {bits} bits")


def _model_method(name: str, model: Any) -> HashMethod:
    bits = int(getattr(model, "bits", None) or getattr(model, "code_bits", None)
               or getattr(getattr(model, "config", None), "code_bits", None) or 64)

    def batch(images: list[Image.Image]) -> np.ndarray:
        return codes_from_model_output(model.hash_batch(images), len(images), bits)

    return HashMethod(name, bits, str(model.model_id), batch_fn=batch)


_OSCAR_LOAD_KWARGS: dict[str, Any] = {}


def configure_oscar(**load_kwargs: Any) -> None:
    """Keyword arguments for ``hasher.load`` (e.g. ``weights=PATH``, ``device="cuda"``) used by method ``oscar``."""
    _OSCAR_LOAD_KWARGS.clear()
    _OSCAR_LOAD_KWARGS.update({k: v for k, v in load_kwargs.items() if v is not None})


def _global_id_method() -> HashMethod:
    """The 256-bit global identity code (``hasher.global_id``), lookup's second tolerant channel."""
    from hasher.global_id import load_global_id

    gid = load_global_id()
    return HashMethod("global-id", gid.bits, gid.model_id,
                      bits_fn=lambda img: gid.binarise(gid.descriptor(np.asarray(img)))[0])


def _oscar_factories() -> dict[str, Callable[[], HashMethod]]:
    try:
        import hasher

        load = getattr(hasher, "load", None)
    except Exception as exc:  # the hasher package is being written in parallel; never let it break the benchmark
        log.warning("hasher.load not importable (%s): no OSCAR methods", exc)
        return {}
    if not callable(load):
        return {}
    factories: dict[str, Callable[[], HashMethod]] = {
        "oscar": lambda: _model_method("oscar", load(**_OSCAR_LOAD_KWARGS)),
        "global-id": _global_id_method}
    variants = getattr(hasher, "OSCAR_VARIANTS", None) or ()
    if isinstance(variants, dict):  # name -> keyword arguments of hasher.load
        for name, kwargs in variants.items():
            factories[f"oscar-{name}"] = lambda n=name, kw=kwargs: _model_method(f"oscar-{n}", load(**kw))
    else:  # names understood by hasher.load(variant=...)
        for name in variants:
            factories[f"oscar-{name}"] = lambda n=name: _model_method(f"oscar-{n}", load(variant=n))
    return factories


def register_trained_variant(name: str, weights: Path) -> None:
    """Method ``oscar-<name>``: ``hasher.load(weights=weights)`` (trained ablation weights)."""

    def factory() -> HashMethod:
        import hasher

        return _model_method(f"oscar-{name}", hasher.load(weights=weights))

    register(f"oscar-{name}", factory)


# --- registry -----------------------------------------------------------------------------------------------------

CLASSICAL: dict[str, Callable[[], HashMethod]] = {
    "ahash": lambda: _imagehash_method("ahash", "average_hash"),
    "dhash": lambda: _imagehash_method("dhash", "dhash"),
    "phash": lambda: _imagehash_method("phash", "phash"),
    "whash": lambda: _imagehash_method("whash", "whash"),
    "colorhash": _colorhash_method,
    "iscc": _iscc_method,
    "pdq": _pdq_method,
    "phash-ours": _phash_ours_method,
}
_EXTRA: dict[str, Callable[[], HashMethod]] = {}


def register(name: str, factory: Callable[[], HashMethod]) -> None:
    """Add a method (e.g. a new model) under ``name``; the factory runs only when the method is used."""
    _EXTRA[name] = factory


def factories(with_models: bool = True) -> dict[str, Callable[[], HashMethod]]:
    """Every registered method; ``with_models=False`` leaves out the OSCAR hook (no torch import)."""
    return {**CLASSICAL, **(_oscar_factories() if with_models else {}), **_EXTRA}


def available_methods() -> list[str]:
    return list(factories())


DEFAULT_METHODS = tuple(CLASSICAL)  # models are opt-in: slow on CPU, and meaningless until trained


def create_methods(names: Sequence[str] | None = None) -> tuple[list[HashMethod], dict[str, str]]:
    """Instantiate methods by name (default: the classical ones; ``all``: every registered one). Returns (methods,
    skipped name -> reason): a method whose library or model is missing is skipped with its reason instead of
    failing the run."""
    names = list(names) if names else list(DEFAULT_METHODS)
    wants_models = any(n == "all" or n.startswith("oscar") or n not in CLASSICAL for n in names)
    known = factories(with_models=wants_models)
    wanted = list(known) if "all" in names else list(dict.fromkeys(names))
    methods: list[HashMethod] = []
    skipped: dict[str, str] = {}
    for name in wanted:
        factory = known.get(name)
        if factory is None:
            skipped[name] = f"unknown method (known: {', '.join(known)})"
            continue
        try:
            method = factory()
            if method.bits_fn is not None:  # smoke test: the library really works
                method.hash_many([Image.new("RGB", (64, 48), (120, 80, 40))])
            methods.append(method)
        except Exception as exc:  # ImportError, missing weights, ...: report and carry on
            skipped[name] = f"{type(exc).__name__}: {exc}"
            log.warning("method %s skipped: %s", name, skipped[name])
    return methods, skipped
