"""``provenance index``: rebuild the hash indexes from the catalog, and show their state.

Registered in the main CLI with ``cli.add_command(index)``. Settings come from the root command's context object
(``provenance --data-dir DIR index ...``: its ``settings`` attribute), as every other command gets them; run alone
(``python -m provenance.index.cli``) it falls back to ``get_settings()``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict

import click
from sqlalchemy.engine import Engine

from provenance.config import Settings, get_settings


def _settings(ctx: click.Context) -> Settings:
    settings = getattr(ctx.find_root().obj, "settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


@contextmanager
def _engine(settings: Settings) -> Iterator[Engine]:
    import provenance.index.catalog  # noqa: F401 - registers index_entries so create_schema makes it
    from provenance.db import create_schema, make_engine

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    try:
        create_schema(engine)
        yield engine
    finally:
        engine.dispose()


@click.group("index")
def index() -> None:
    """Perceptual-hash indexes (one per hash channel) built from the catalog in the database."""


@index.command("rebuild")
@click.option("--channel", default=None, help="Only this hash channel (e.g. oscar, pdq). Default: every channel.")
@click.pass_context
def rebuild(ctx: click.Context, channel: str | None) -> None:
    """Rebuild the faiss index files under DATA_DIR/index from the catalog."""
    from provenance.index.service import HashIndex

    settings = _settings(ctx)
    with _engine(settings) as engine:
        counts = HashIndex(settings.data_dir, engine, preload=False).rebuild(channel)
    if not counts:
        click.echo("no hash channels in the catalog: nothing to rebuild")
    for ch, n in counts.items():
        click.echo(f"{ch}: {n} entries indexed")


@index.command("stats")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Per channel: live and withdrawn catalog entries, and whether the saved file is intact and up to date."""
    from provenance.index.service import inspect_channels

    settings = _settings(ctx)
    with _engine(settings) as engine:
        status = inspect_channels(settings.data_dir, engine)
    if as_json:
        click.echo(json.dumps([asdict(s) for s in status], indent=2, sort_keys=True))
        return
    if not status:
        click.echo("no hash channels in the catalog")
    for s in status:
        what = f"{s.kind}, {s.bits} bits, {s.file_bytes} bytes" if s.kind else "no usable file"
        click.echo(f"{s.channel}: {s.live} live, {s.withdrawn} withdrawn, max id {s.max_id}; file {s.file} "
                   f"({what}): {s.detail}")


if __name__ == "__main__":
    index()
