"""``C2paSummary``: what a record keeps of an image's C2PA manifest store, in plain canonical-JSON-able values.

Pure: :func:`summarise_store` turns the manifest-store JSON that c2pa produces (``Reader.json()``) into a summary,
and :meth:`C2paSummary.to_obj` / :meth:`C2paSummary.from_obj` round-trip it through the record's ``c2pa`` slot.
Everything in ``to_obj()`` is a string, a list, a dict or ``None`` (never a float), so RFC 8785 has one byte form.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Literal

from provenance.errors import InvalidRecordError

Status = Literal["present", "absent", "remote", "error"]
STATUSES: tuple[str, ...] = ("present", "absent", "remote", "error")
VALIDATION_STATES: tuple[str, ...] = ("Invalid", "Valid", "Trusted")
SOFT_BINDING_LABEL = "c2pa.soft-binding"
# Our own assertion (entity-specific label) pointing from a signed copy back to its ledger record.
RECORD_ASSERTION_LABEL = "org.provenance-service.record"
# Our assertion pointing from a signed copy to the record's offline proof bundle: {record_cid, tree_size, sha256, url}.
PROOF_BUNDLE_ASSERTION_LABEL = "org.provenance-service.proof-bundle"


@dataclass(frozen=True)
class Ingredient:
    title: str | None
    relationship: str | None
    format: str | None

    def to_obj(self) -> dict[str, Any]:
        return {"title": self.title, "relationship": self.relationship, "format": self.format}


@dataclass(frozen=True)
class SoftBinding:
    """One block of a ``c2pa.soft-binding`` assertion: algorithm name and its value (as a string)."""

    alg: str | None
    value: str
    alg_params: str | None = None

    def to_obj(self) -> dict[str, Any]:
        return {"alg": self.alg, "value": self.value, "alg_params": self.alg_params}


@dataclass(frozen=True)
class C2paSummary:
    """What c2pa says about one image.

    ``status``: ``present`` (an embedded manifest store was read and validated), ``absent`` (none), ``remote`` (the
    asset only points at a manifest elsewhere, ``remote_url``; we never fetch it) or ``error`` (a store is there but
    unreadable: ``error`` says why). ``active_manifest`` is the manifest label other services call ``manifestId``.
    ``signer`` is what c2pa calls the ``issuer`` (the organisation named in the signing certificate's subject);
    ``failure_codes`` are the active manifest's validation failures, ``ingredient_failure_codes`` those of its
    ingredients' manifests.
    """

    status: Status
    validation_state: str | None = None
    active_manifest: str | None = None
    claim_generator: str | None = None
    signer: str | None = None
    signer_common_name: str | None = None
    signed_at: str | None = None
    title: str | None = None
    format: str | None = None
    actions: tuple[str, ...] = ()
    ingredients: tuple[Ingredient, ...] = ()
    failure_codes: tuple[str, ...] = ()
    ingredient_failure_codes: tuple[str, ...] = ()
    soft_bindings: tuple[SoftBinding, ...] = ()
    record_cid: str | None = None
    remote_url: str | None = None
    error: str | None = None

    @property
    def is_trusted(self) -> bool:
        return self.status == "present" and self.validation_state == "Trusted"

    def to_obj(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "validation_state": self.validation_state,
            "active_manifest": self.active_manifest,
            "claim_generator": self.claim_generator,
            "signer": self.signer,
            "signer_common_name": self.signer_common_name,
            "signed_at": self.signed_at,
            "title": self.title,
            "format": self.format,
            "actions": list(self.actions),
            "ingredients": [i.to_obj() for i in self.ingredients],
            "failure_codes": list(self.failure_codes),
            "ingredient_failure_codes": list(self.ingredient_failure_codes),
            "soft_bindings": [s.to_obj() for s in self.soft_bindings],
            "record_cid": self.record_cid,
            "remote_url": self.remote_url,
            "error": self.error,
        }

    @classmethod
    def from_obj(cls, obj: Any) -> C2paSummary:
        """Inverse of :meth:`to_obj`; raises :class:`InvalidRecordError` on anything else."""
        try:
            if not isinstance(obj, dict) or set(obj) != _KEYS:
                raise InvalidRecordError(f"c2pa summary must have exactly the keys {sorted(_KEYS)}")
            if obj["status"] not in STATUSES:
                raise InvalidRecordError(f"unknown c2pa status {obj['status']!r}")
            if obj["validation_state"] not in (None, *VALIDATION_STATES):
                raise InvalidRecordError(f"unknown c2pa validation state {obj['validation_state']!r}")
            summary = cls(
                status=obj["status"],
                validation_state=obj["validation_state"],
                active_manifest=_opt_str(obj, "active_manifest"),
                claim_generator=_opt_str(obj, "claim_generator"),
                signer=_opt_str(obj, "signer"),
                signer_common_name=_opt_str(obj, "signer_common_name"),
                signed_at=_opt_str(obj, "signed_at"),
                title=_opt_str(obj, "title"),
                format=_opt_str(obj, "format"),
                actions=_str_tuple(obj["actions"]),
                ingredients=tuple(
                    Ingredient(_opt_str(i, "title"), _opt_str(i, "relationship"), _opt_str(i, "format"))
                    for i in obj["ingredients"]
                ),
                failure_codes=_str_tuple(obj["failure_codes"]),
                ingredient_failure_codes=_str_tuple(obj["ingredient_failure_codes"]),
                soft_bindings=tuple(
                    SoftBinding(_opt_str(s, "alg"), _req_str(s, "value"), _opt_str(s, "alg_params"))
                    for s in obj["soft_bindings"]
                ),
                record_cid=_opt_str(obj, "record_cid"),
                remote_url=_opt_str(obj, "remote_url"),
                error=_opt_str(obj, "error"),
            )
        except InvalidRecordError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidRecordError(f"c2pa summary does not match its schema: {exc!r}") from exc
        if summary.to_obj() != obj:
            raise InvalidRecordError("c2pa summary has fields of the wrong shape")
        return summary


_KEYS = frozenset(C2paSummary(status="absent").to_obj())


def _opt_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj[key]
    if value is not None and not isinstance(value, str):
        raise InvalidRecordError(f"c2pa summary field {key!r} must be a string or null")
    return value


def _req_str(obj: dict[str, Any], key: str) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise InvalidRecordError(f"c2pa summary field {key!r} must be a string")
    return value


def _str_tuple(values: Any) -> tuple[str, ...]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InvalidRecordError("c2pa summary lists must hold strings")
    return tuple(values)


# --- from c2pa's manifest-store JSON ---------------------------------------------------------------------------------
def summarise_store(store: dict[str, Any], *, asset_format: str | None) -> C2paSummary:
    """Summarise a manifest store as ``Reader.json()`` gives it (``asset_format`` fills in a missing ``format``)."""
    label = _str_or_none(store.get("active_manifest"))
    manifests = store.get("manifests") or {}
    manifest = manifests.get(label) if label is not None else None
    if not isinstance(manifest, dict):
        manifest = {}
    sig = manifest.get("signature_info") or {}
    assertions = [a for a in manifest.get("assertions") or [] if isinstance(a, dict)]
    state = _str_or_none(store.get("validation_state"))
    return C2paSummary(
        status="present",
        validation_state=state if state in VALIDATION_STATES else None,
        active_manifest=label,
        claim_generator=_claim_generator(manifest),
        signer=_str_or_none(sig.get("issuer")),
        signer_common_name=_str_or_none(sig.get("common_name")),
        signed_at=_str_or_none(sig.get("time")),
        title=_str_or_none(manifest.get("title")),
        format=_str_or_none(manifest.get("format")) or asset_format,
        actions=tuple(_actions(assertions)),
        ingredients=tuple(
            Ingredient(_str_or_none(i.get("title")), _str_or_none(i.get("relationship")), _str_or_none(i.get("format")))
            for i in manifest.get("ingredients") or []
            if isinstance(i, dict)
        ),
        failure_codes=_failure_codes(store),
        ingredient_failure_codes=_ingredient_failure_codes(store),
        soft_bindings=tuple(_soft_bindings(assertions)),
        record_cid=_record_cid(assertions),
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _label_is(assertion: dict[str, Any], base: str) -> bool:
    """``c2pa.actions`` matches ``c2pa.actions``, ``c2pa.actions.v2`` and repeated instances (``...__1``)."""
    label = str(assertion.get("label", "")).split("__", 1)[0]
    return label == base or (label.startswith(base + ".v") and label[len(base) + 2 :].isdigit())


def _claim_generator(manifest: dict[str, Any]) -> str | None:
    """Version 1 claims carry a string; version 2 only ``claim_generator_info``: render it the v1 way."""
    if isinstance(manifest.get("claim_generator"), str):
        return manifest["claim_generator"]
    parts = []
    for info in manifest.get("claim_generator_info") or []:
        if isinstance(info, dict) and isinstance(info.get("name"), str):
            version = info.get("version")
            parts.append(f"{info['name']}/{version}" if isinstance(version, str) else info["name"])
    return " ".join(parts) or None


def _actions(assertions: list[dict[str, Any]]) -> list[str]:
    names = []
    for assertion in assertions:
        if _label_is(assertion, "c2pa.actions"):
            for action in (assertion.get("data") or {}).get("actions") or []:
                if isinstance(action, dict) and isinstance(action.get("action"), str):
                    names.append(action["action"])
    return names


def _codes(entries: Any) -> tuple[str, ...]:
    codes: list[str] = []
    for entry in entries or []:
        code = entry.get("code") if isinstance(entry, dict) else None
        if isinstance(code, str) and code not in codes:
            codes.append(code)
    return tuple(codes)


def _failure_codes(store: dict[str, Any]) -> tuple[str, ...]:
    results = store.get("validation_results")
    if isinstance(results, dict) and isinstance(results.get("activeManifest"), dict):
        return _codes(results["activeManifest"].get("failure"))
    # Older stores have only the flat list, which mixes in ingredient failures.
    return _codes(store.get("validation_status"))


def _ingredient_failure_codes(store: dict[str, Any]) -> tuple[str, ...]:
    results = store.get("validation_results")
    deltas = results.get("ingredientDeltas") if isinstance(results, dict) else None
    failures: list[Any] = []
    for delta in deltas or []:
        if isinstance(delta, dict) and isinstance(delta.get("validationDeltas"), dict):
            failures.extend(delta["validationDeltas"].get("failure") or [])
    return _codes(failures)


def _binding_value(value: Any) -> str | None:
    """The spec types a block's value as bytes; c2pa shows a text value as is, a byte string as a list of ints."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return base64.b64encode(bytes(value)).decode("ascii")
    return None


def _soft_bindings(assertions: list[dict[str, Any]]) -> list[SoftBinding]:
    found = []
    for assertion in assertions:
        if not _label_is(assertion, SOFT_BINDING_LABEL):
            continue
        data = assertion.get("data") or {}
        alg = _str_or_none(data.get("alg"))
        params = data.get("alg-params", data.get("alg_params"))
        for block in data.get("blocks") or []:
            value = _binding_value(block.get("value")) if isinstance(block, dict) else None
            if value is not None:
                found.append(SoftBinding(alg, value, _binding_value(params)))
    return found


def _record_cid(assertions: list[dict[str, Any]]) -> str | None:
    for assertion in assertions:
        if str(assertion.get("label", "")).split("__", 1)[0] == RECORD_ASSERTION_LABEL:
            return _str_or_none((assertion.get("data") or {}).get("record_cid"))
    return None
