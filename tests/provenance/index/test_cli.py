"""``provenance index rebuild|stats``: settings come from the root command's context object, as in provenance.cli."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import click
from click.testing import CliRunner

from provenance.config import Settings
from provenance.db import make_engine
from provenance.index import HashIndex
from provenance.index.cli import index


def root_with(settings: Settings) -> click.Group:
    """A stand-in for ``provenance.cli.cli``: a root group whose ``ctx.obj`` carries ``settings``."""

    @click.group()
    @click.pass_context
    def root(ctx: click.Context) -> None:
        ctx.obj = SimpleNamespace(settings=settings)

    root.add_command(index)
    return root


def test_rebuild_and_stats(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    runner = CliRunner()
    root = root_with(settings)

    empty = runner.invoke(root, ["index", "stats"])
    assert empty.exit_code == 0, empty.output
    assert "no hash channels in the catalog" in empty.output

    engine = make_engine(settings.resolved_database_url)
    try:
        hidx = HashIndex(settings.data_dir, engine)
        for i in range(5):
            hidx.add("oscar", f"cid{i}", "acme", f"{i:016x}")
        hidx.add("pdq", "cid0", "acme", "00" * 32)
        hidx.withdraw("cid4", "acme")
    finally:
        engine.dispose()

    stats = runner.invoke(root, ["index", "stats"])
    assert stats.exit_code == 0, stats.output
    assert "oscar: 4 live, 1 withdrawn" in stats.output and "file missing" in stats.output

    rebuilt = runner.invoke(root, ["index", "rebuild", "--channel", "oscar"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert rebuilt.output.strip() == "oscar: 4 entries indexed"
    assert (settings.data_dir / "index" / "oscar.faissbin").exists()
    assert not (settings.data_dir / "index" / "pdq.faissbin").exists()

    every = runner.invoke(root, ["index", "rebuild"])
    assert every.exit_code == 0 and every.output.splitlines() == ["oscar: 4 entries indexed", "pdq: 1 entries indexed"]

    as_json = json.loads(runner.invoke(root, ["index", "stats", "--json"]).output)
    assert [(s["channel"], s["file"], s["kind"], s["bits"], s["live"]) for s in as_json] == [
        ("oscar", "ok", "flat", 64, 4), ("pdq", "ok", "flat", 256, 1)]


def test_standalone_uses_get_settings(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PROVENANCE_DATA_DIR", str(tmp_path / "env-data"))
    result = CliRunner().invoke(index, ["rebuild"])
    assert result.exit_code == 0, result.output
    assert "nothing to rebuild" in result.output and (tmp_path / "env-data" / "ledger.sqlite3").exists()
