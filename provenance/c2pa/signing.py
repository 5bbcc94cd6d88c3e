"""Emitting a C2PA-signed copy of an image that carries our perceptual hash as a soft binding.

The new manifest treats the publisher's image as its parent ingredient (``c2pa.opened``), so a manifest the image
already had stays in the chain. Its assertions:

* ``c2pa.soft-binding`` (C2PA 2.x shape): ``alg`` = our hash algorithm, one block ``{scope: {}, value}`` whose empty
  scope means "the whole image", ``alg-params`` = the hash model id, ``pad`` empty. The value is the hash in the
  algorithm's own text form (our hex), as c2pa-rs itself models it (a string; c2pa 0.91 decodes and accepts it).
* ``org.provenance-service.record``: ``{record_cid}``, the ledger record of the original image.
* ``org.provenance-service.proof-bundle`` (when given): ``{record_cid, tree_size, sha256, url}``, the record's
  offline proof bundle (docs/bundles.md) by digest and where to fetch it, so the copy carries its own proof.

Pixels are not touched; only the manifest is added. No thumbnail is embedded (it would only grow the file).
"""

from __future__ import annotations

import io
import os
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import c2pa

from provenance.c2pa.credentials import C2paSigningConfig
from provenance.c2pa.errors import C2paSigningError, C2paUnsupportedMediaError
from provenance.c2pa.formats import C2PA_IMAGE_TYPES, sniff_media_type
from provenance.c2pa.summary import PROOF_BUNDLE_ASSERTION_LABEL, RECORD_ASSERTION_LABEL, SOFT_BINDING_LABEL

CLAIM_GENERATOR = "provenance-service"
_HEIF_FAMILY = frozenset({"image/heic", "image/heif", "image/avif"})


def sign_with_soft_binding(
    image: bytes,
    mime: str,
    *,
    binding_alg: str,
    binding_value: str,
    model_id: str,
    record_cid: str,
    title: str | None,
    signer: C2paSigningConfig,
    proof_bundle: dict[str, Any] | None = None,
) -> bytes:
    """A copy of ``image`` with a new active C2PA manifest signed by ``signer`` (see the module docstring)."""
    for name, value in (
        ("binding_alg", binding_alg),
        ("binding_value", binding_value),
        ("model_id", model_id),
        ("record_cid", record_cid),
    ):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string")
    if mime not in C2PA_IMAGE_TYPES:
        raise C2paUnsupportedMediaError(f"cannot embed a C2PA manifest in {mime!r}")
    sniffed = sniff_media_type(image)
    if sniffed != mime and not {sniffed, mime} <= _HEIF_FAMILY:
        raise C2paUnsupportedMediaError(f"the bytes are {sniffed or 'not an image format we know'}, not {mime}")

    builder = c2pa.Builder(
        _manifest_definition(binding_alg, binding_value, model_id, record_cid, title, proof_bundle),
        context=_builder_context(os.getpid()),
    )
    out = io.BytesIO()
    try:
        builder.set_intent(c2pa.C2paBuilderIntent.EDIT)  # parent ingredient from the source + c2pa.opened
        with _make_signer(signer) as c2pa_signer:
            builder.sign(c2pa_signer, mime, io.BytesIO(image), out)
    except c2pa.C2paError.NotSupported as exc:
        raise C2paUnsupportedMediaError(f"c2pa cannot sign {mime}: {exc}") from exc
    except c2pa.C2paError as exc:
        raise C2paSigningError(f"c2pa refused to sign the {mime} image: {exc}") from exc
    finally:
        builder.close()
    return out.getvalue()


def sign_manifest_store(
    image: bytes,
    mime: str,
    *,
    label: str,
    bindings: list[tuple[str, str, str]],
    record_cid: str,
    title: str | None,
    signer: C2paSigningConfig,
    proof_bundle: dict[str, Any] | None = None,
) -> bytes:
    """A C2PA manifest store (``application/c2pa``, not embedded) whose active manifest, labelled ``label``, is
    bound to ``image`` and holds one ``c2pa.soft-binding`` assertion per ``(alg, value, alg-params)`` of
    ``bindings``, the record CID and, when given, the proof bundle reference. A manifest ``image`` already carries
    comes along as its parent ingredient. The Soft Binding Resolution API serves it (``GET /manifests/{id}``)."""
    if mime not in C2PA_IMAGE_TYPES:
        raise C2paUnsupportedMediaError(f"cannot sign a C2PA manifest for {mime!r}")
    if not bindings or not all(isinstance(v, str) and v for b in bindings for v in b):
        raise ValueError("bindings must be non-empty (alg, value, alg-params) strings")
    definition = _manifest_definition(*bindings[0], record_cid, title, proof_bundle)
    definition["label"] = label
    definition["assertions"][1:1] = [{"label": SOFT_BINDING_LABEL, "data": {
        "alg": alg, "blocks": [{"scope": {}, "value": value}], "alg-params": params, "pad": []}}
        for alg, value, params in bindings[1:]]
    builder = c2pa.Builder(definition, context=_builder_context(os.getpid()))
    try:
        builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
        builder.set_no_embed()
        with _make_signer(signer) as c2pa_signer:
            return bytes(builder.sign(c2pa_signer, mime, io.BytesIO(image), io.BytesIO()))
    except c2pa.C2paError.NotSupported as exc:
        raise C2paUnsupportedMediaError(f"c2pa cannot sign for {mime}: {exc}") from exc
    except c2pa.C2paError as exc:
        raise C2paSigningError(f"c2pa refused to sign the manifest store: {exc}") from exc
    finally:
        builder.close()


def _manifest_definition(
    binding_alg: str, binding_value: str, model_id: str, record_cid: str, title: str | None,
    proof_bundle: dict[str, Any] | None = None,
) -> dict[str, Any]:
    soft_binding = {
        "alg": binding_alg,
        "blocks": [{"scope": {}, "value": binding_value}],
        "alg-params": model_id,
        "pad": [],
    }
    definition: dict[str, Any] = {
        "claim_generator_info": [{"name": CLAIM_GENERATOR, "version": _our_version()}],
        "assertions": [
            {"label": SOFT_BINDING_LABEL, "data": soft_binding},
            {"label": RECORD_ASSERTION_LABEL, "data": {"record_cid": record_cid}},
        ],
    }
    if proof_bundle is not None:
        definition["assertions"].append({"label": PROOF_BUNDLE_ASSERTION_LABEL, "data": proof_bundle})
    if title is not None:
        definition["title"] = title
    return definition


def _make_signer(config: C2paSigningConfig) -> c2pa.Signer:
    try:
        return c2pa.Signer.from_info(
            c2pa.C2paSignerInfo(
                config.alg.encode("ascii"), config.cert_chain_pem, config.private_key_pem, config.tsa_url
            )
        )
    except c2pa.C2paError as exc:
        raise C2paSigningError(f"c2pa refused the signing credentials: {exc}") from exc


@lru_cache(maxsize=2)
def _builder_context(pid: int) -> c2pa.Context:
    """Per process: c2pa-python closes a forked child's copies of native handles (see the reader's context)."""
    return c2pa.Context.from_dict(
        {"builder": {"thumbnail": {"enabled": False}}, "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    )


@lru_cache(maxsize=1)
def _our_version() -> str:
    try:
        return version("provenance-service")
    except PackageNotFoundError:
        return "0+unknown"
