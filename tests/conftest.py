"""Shared test configuration.

Real services: each fixture module in ``tests/fixtures`` uses the service named by its ``PROVENANCE_TEST_*``
environment variable when set (``.ci/run`` starts them and sets these), and otherwise starts its own from the
pinned tools in ``tools/node``. When a service cannot be had, its tests skip with the reason, except when
``PROVENANCE_TEST_REQUIRE_SERVICES=1`` (set by CI), where they fail instead.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.fixtures.services", "tests.fixtures.ipfs", "tests.fixtures.evm", "tests.fixtures.db"]


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch):
    """No test sees another's cached settings."""
    from provenance.config import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def shared_photos():
    """The real third-party photos in ../shared/data/photos (see its README for sources and licences)."""
    from tests.fixtures.services import ROOT

    path = ROOT.parent / "shared" / "data" / "photos"
    if not path.is_dir():
        pytest.skip(f"shared photos not found at {path}")
    return path


def run_isolated(coro):  # type: ignore[no-untyped-def]
    """``asyncio.run(coro)`` on a fresh thread: a session-scoped browser fixture (Playwright's sync API) keeps an event
    loop running on the main thread, where ``asyncio.run`` would refuse."""
    import asyncio
    import threading

    out: dict = {}

    def target() -> None:
        try:
            out["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            out["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out.get("value")
