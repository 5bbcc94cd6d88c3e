"""The HTTP API (FastAPI): publisher ingest, public lookup with proofs, the C2PA Soft Binding Resolution API and
the journalist page. ``create_app()`` builds the application; ``provenance serve`` runs it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provenance.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from provenance.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
