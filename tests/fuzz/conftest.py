"""The fuzz suite's budget, its counters, and the real inputs it mutates.

Budget: every target runs under the ``provenance-fuzz`` hypothesis profile, ``deadline=None`` (a loaded CI machine
must not turn slowness into failures), derandomised so that CI runs the same cases each time, with the per-target
``max_examples`` each test names (the whole suite stays well under a minute). ``PROVENANCE_FUZZ_EXAMPLES=N`` runs N
examples per target instead, with fresh random cases each run: the long local run (docs/fuzzing.md).

Counting: each target calls :meth:`FuzzStats.run` once per example; an exception outside the target's documented
error types counts as a failure (and is re-raised, so hypothesis shrinks it and the test fails). At the end of the
session one line per target is printed (``fuzz <target>: N examples, F failures``); with
``PROVENANCE_FUZZ_REPORT=FILE`` the counts are also written there as JSON, and with ``PROVENANCE_FUZZ_COLLECT=1``
failures are counted without stopping (a survey of every crash class in one run).
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings

T = TypeVar("T")

_LONG = int(os.environ.get("PROVENANCE_FUZZ_EXAMPLES", "0") or 0)
#: ``PROVENANCE_FUZZ_COLLECT=1``: count failures and go on (no shrinking, the test passes): a survey of every crash
#: class in one run, for the counts in docs/fuzzing.md. CI never sets it.
_COLLECT = os.environ.get("PROVENANCE_FUZZ_COLLECT", "") not in ("", "0")

settings.register_profile(
    "provenance-fuzz",
    deadline=None,
    derandomize=_LONG == 0,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.function_scoped_fixture, HealthCheck.large_base_example],
)


def budget(ci_examples: int) -> settings:
    """The settings of one target: ``ci_examples`` examples in CI, ``PROVENANCE_FUZZ_EXAMPLES`` when set."""
    return settings(settings.get_profile("provenance-fuzz"), max_examples=_LONG or ci_examples)


@dataclass
class TargetStats:
    examples: int = 0
    failures: int = 0
    crashes: dict[str, str] = field(default_factory=dict)  # "TypeError at file:line" -> the first input's repr


class FuzzStats:
    def __init__(self) -> None:
        self.targets: dict[str, TargetStats] = {}

    def run(self, target: str, call: Callable[[], T], expected: tuple[type[BaseException], ...] = (),
            *, given: object = None) -> T | None:
        """Run one example: its result, or None when it raised one of the ``expected`` (documented) errors."""
        stats = self.targets.setdefault(target, TargetStats())
        stats.examples += 1
        try:
            return call()
        except expected:
            return None
        except Exception as exc:
            stats.failures += 1
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            where = f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}"
            stats.crashes.setdefault(where, repr(given)[:300])
            if _COLLECT:
                return None
            raise

    def fail(self, target: str, what: str, given: object) -> None:
        """Count a failure that is not an exception (e.g. a 5xx answer)."""
        stats = self.targets.setdefault(target, TargetStats())
        stats.failures += 1
        stats.crashes.setdefault(what, repr(given)[:300])

    def lines(self) -> list[str]:
        out = []
        for name in sorted(self.targets):
            s = self.targets[name]
            line = f"fuzz {name}: {s.examples} examples, {s.failures} failures"
            if s.crashes:
                line += " (" + "; ".join(s.crashes) + ")"
            out.append(line)
        return out


_STATS = FuzzStats()


@pytest.fixture(scope="session")
def fuzz_stats() -> FuzzStats:
    return _STATS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _STATS.targets:
        return
    terminalreporter.section("fuzzing: examples and failures per target")
    for line in _STATS.lines():
        terminalreporter.write_line(line)
    report = os.environ.get("PROVENANCE_FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps(
            {name: {"examples": s.examples, "failures": s.failures, "crashes": s.crashes}
             for name, s in sorted(_STATS.targets.items())}, indent=2) + "\n")


# --- real inputs to mutate --------------------------------------------------------------------------------------
CORPUS = Path(__file__).parent / "corpus"


def corpus_files(target: str) -> list[Path]:
    """The inputs kept under ``corpus/<target>/`` (each one found a bug; replayed by every run)."""
    folder = CORPUS / target
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


@pytest.fixture(scope="session")
def shared_data() -> Path:
    from tests.fixtures.services import ROOT

    path = ROOT.parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(scope="session")
def trust_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Real signed artefacts from a real ledger (SQLite, local block store, pHash, a fake anchor): see seeds.py."""
    from tests.fuzz.seeds import build_world

    world = build_world(tmp_path_factory.mktemp("fuzz-world") / "data")
    yield world
    world.close()
