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
from pathlib import Path

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
@click.option("--rehash", is_flag=True, help="Re-hash every stored image under a new model (--weights) into that "
              "model's channel version, leaving the signed records as they are. Resumable: run it again after an "
              "interruption, or to catch records ingested under the old model meanwhile.")
@click.option("--alg", type=click.Choice(["oscar-net", "global-id"]), default="oscar-net", show_default=True,
              help="With --rehash: the code to re-hash.")
@click.option("--weights", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="With --rehash: the new model's weights (default: PROVENANCE_OSCAR_WEIGHTS for oscar-net, else "
              "the shipped model).")
@click.option("--limit", type=click.IntRange(1), default=None, help="With --rehash: at most this many records now.")
@click.option("--json", "as_json", is_flag=True, help="With --rehash: the report as JSON.")
@click.pass_context
def rebuild(ctx: click.Context, channel: str | None, rehash: bool, alg: str, weights: Path | None,
            limit: int | None, as_json: bool) -> None:
    """Rebuild the faiss index files under DATA_DIR/index from the catalog; with --rehash, first fill a new model's
    channel version from the stored images (docs/hasher.md, "Model upgrades")."""
    from provenance.index.service import HashIndex

    settings = _settings(ctx)
    if rehash:
        if channel is not None:
            raise click.UsageError("--rehash fills the channel of the model it runs; it takes no --channel")
        _rehash(settings, alg, weights, limit, as_json)
        return
    if weights is not None or limit is not None:
        raise click.UsageError("--weights and --limit go with --rehash")
    with _engine(settings) as engine:
        counts = HashIndex(settings.data_dir, engine, preload=False).rebuild(channel)
    if not counts:
        click.echo("no hash channels in the catalog: nothing to rebuild")
    for ch, n in counts.items():
        click.echo(f"{ch}: {n} entries indexed")


def _rehash(settings: Settings, alg: str, weights: Path | None, limit: int | None, as_json: bool) -> None:
    from provenance.hashing import GlobalIdHasher, OscarNetHasher
    from provenance.index.rehash import rehash_channel
    from provenance.index.service import HashIndex
    from provenance.records import parse_record
    from provenance.services import open_ledger

    if alg == "oscar-net":
        chosen = weights or settings.oscar_weights
        hasher: OscarNetHasher | GlobalIdHasher = OscarNetHasher(None if chosen is None else str(chosen))
    else:
        hasher = GlobalIdHasher(None if weights is None else str(weights))
    ledger = open_ledger(settings)
    try:
        def image_of(cid: str) -> bytes:
            with ledger.reader.connect() as conn:
                stored = ledger.store.get(conn, cid)
            if stored is None:
                raise LookupError(f"record {cid} is indexed but not in the record store")
            return ledger.blockstore.get(parse_record(stored.record_bytes).record.image_cid)

        index = HashIndex(settings.data_dir, ledger.engine, preload=False)
        report = rehash_channel(index, hasher, image_of, limit=limit)
        if report.rehashed or report.already:
            index.rebuild(report.channel)  # write the new channel's file
    finally:
        ledger.close()
    if as_json:
        click.echo(json.dumps({**asdict(report), "complete": report.complete}, indent=2, sort_keys=True))
    elif not report.sources:
        click.echo(f"nothing to re-hash: the catalog holds no other {alg} channel than {report.channel}")
    else:
        click.echo(f"{report.channel} (model {report.model_id}): {report.rehashed} re-hashed, {report.already} "
                   f"already there, {len(report.failed)} failed, from {', '.join(report.sources)} "
                   f"in {report.seconds:.1f} s")
        for cid, why in report.failed[:10]:
            click.echo(f"  failed {cid}: {why}", err=True)
    if report.failed:
        raise SystemExit(1)


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
