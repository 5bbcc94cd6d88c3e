"""Strict readers shared by the parsers of signed artefacts (receipts, bundles): one place for "exactly these
fields", with each parser's own error type and wording passed in. Pure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def exact_fields(obj: Any, path: str, names: tuple[str, ...], fail: Callable[[str, str], Exception],
                 kind: Callable[[Any], str]) -> dict[str, Any]:
    """``obj`` when it is an object with exactly ``names``; else ``fail(path, reason)`` raised."""
    if not isinstance(obj, dict):
        raise fail(path, f"must be an object, got {kind(obj)}")
    missing = [n for n in names if n not in obj]
    if missing:
        raise fail(path, f"missing field(s) {', '.join(missing)}")
    unknown = sorted(set(obj) - set(names))
    if unknown:
        raise fail(path, f"unknown field(s) {', '.join(unknown)}")
    return obj
